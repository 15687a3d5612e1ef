//! Command-line interface: clap definitions and one small module per
//! command group. No logic here beyond turning arguments into calls of the
//! library and results into output.

mod build;
mod check;
mod commit;
mod completion;
mod container;
mod containers;
mod copy;
mod exec;
mod flags;
mod images;
mod lifecycle;
mod login;
mod manpages;
pub mod output;
mod overlay;
mod overlayfs;
mod profile;
mod project;
mod pull;
mod run;
mod template;
mod transfer;
mod verify;
mod volume;

use crate::error::EXIT_FAILED;
use crate::store::Store;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "hutch",
    version,
    about = "Rootless, daemonless sandboxes from OCI images",
    max_term_width = 100
)]
pub struct Cli {
    /// Store directory [default: $XDG_DATA_HOME/hutch or ~/.local/share/hutch]
    #[arg(long, global = true, env = "HUTCH_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// More log output (--verbose info, twice debug); RUST_LOG overrides.
    /// (No -v: `run -v` mounts a volume, as in Docker.)
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that this host can run hutch (and with --store, the store's integrity)
    Check(check::CheckArgs),
    /// Pull an image from a registry
    Pull(pull::PullArgs),
    /// Push an image to a registry
    Push(pull::PushArgs),
    /// Check and keep credentials for a registry (Podman's auth.json)
    Login(login::LoginArgs),
    /// Forget the credentials for a registry
    Logout(login::LogoutArgs),
    /// Load images from an OCI layout, OCI archive or docker-archive
    Load(transfer::LoadArgs),
    /// Make a one-layer image from a root filesystem tarball
    Import(transfer::ImportArgs),
    /// Write an image as an OCI archive, OCI layout directory or docker-archive
    Save(transfer::SaveArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Show images' manifest, config, layers and history as JSON (else containers, as container inspect)
    Inspect(images::InspectArgs),
    /// Give an image another name
    Tag(images::TagArgs),
    /// Remove images (tags and, when nothing else uses it, their data)
    Rmi(images::RmiArgs),
    /// Show how an image was built, or with --tag, the versions a tag has pointed to
    History(images::HistoryArgs),
    /// Point a tag back to its previous version (or to --to DIGEST)
    Rollback(images::RollbackArgs),
    /// Remove blobs and unpacked layers that no image uses
    Prune(images::PruneArgs),
    /// Run a command in a new container
    Run(Box<run::RunArgs>),
    /// List containers
    Ps(containers::PsArgs),
    /// Remove containers
    Rm(containers::RmArgs),
    /// Give a container another name
    Rename(containers::RenameArgs),
    /// Show the processes of a running container
    Top(container::TopArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Show what a detached container wrote on stdout and stderr
    Logs(lifecycle::LogsArgs),
    /// Start created or exited containers again, in the background (-a: attached)
    Start(lifecycle::StartArgs),
    /// Stop containers: their stop signal (TERM unless set), then SIGKILL after a timeout
    Stop(lifecycle::StopArgs),
    /// Attach to a running container's terminal (-t) or stdin and output (-i)
    Attach(lifecycle::AttachArgs),
    /// Stop containers, then start them again
    Restart(lifecycle::RestartArgs),
    /// Send a signal to containers (default KILL)
    Kill(lifecycle::KillArgs),
    /// Wait for containers to end and print their exit statuses
    Wait(lifecycle::WaitArgs),
    /// Serve a detached container (started by `run -d` and `start`)
    #[command(name = "__keep", hide = true)]
    Keep(lifecycle::KeepArgs),
    /// Copy files between a container (running or stopped) and the host
    Cp(copy::CpArgs),
    /// Write a container's root filesystem as a tar archive
    Export(copy::ExportArgs),
    /// Show the files a container added (A), changed (C) and deleted (D)
    Diff(commit::DiffArgs),
    /// Make a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Build an image from a Containerfile (Dockerfile)
    Build(build::BuildArgs),
    #[command(name = "__build-run", hide = true)]
    BuildRun(build::BuildRunArgs),
    /// Work with containers (inspect, top, ls, diff, commit, cp, export)
    Container(container::ContainerArgs),
    /// Print an image's rootfs digest (--expect: check it)
    Verify(verify::VerifyArgs),
    /// Named volumes: create, ls, inspect, rm, prune
    Volume(volume::VolumeArgs),
    /// Mount layer dirs with hutch's FUSE overlay in a private namespace and run a command there
    Overlay(overlay::OverlayArgs),
    /// Mount layer dirs with hutch's overlay in the caller's namespace, as fuse-overlayfs does (also run as hutch-overlayfs)
    Overlayfs(overlayfs::OverlayfsArgs),
    /// List profiles and show what one allows (built-in and ~/.config/hutch/profiles)
    Profile(profile::ProfileArgs),
    /// Write a commented hutch.toml: a project's environment and services
    Init(project::InitArgs),
    /// Pin every image of the project (hutch.toml) to a digest in hutch.lock
    Lock(project::LockArgs),
    /// Enter the project's environment (hutch.toml), made from hutch.lock on first use
    Shell(project::ShellArgs),
    /// Start the project's services (and its environment), each once ready
    Up(project::UpArgs),
    /// Stop and remove the project's services and environment
    Down(project::DownArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(completion::CompletionArgs),
    /// Write the manual pages (hutch.1, hutch-run.1, ...) into a directory
    Man(manpages::ManArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Open the store chosen by --root / HUTCH_ROOT / the default.
fn open_store(root: &Option<PathBuf>) -> Result<Store> {
    let root = match root {
        Some(r) => r.clone(),
        None => Store::default_root()?,
    };
    Store::open(root)
}

/// Run the command line; returns the process exit status.
pub fn main() -> i32 {
    // Run as `hutch-overlayfs` (a symlink to hutch): fuse-overlayfs's
    // command line, for Podman's mount_program and mount.fuse3.
    let mut argv = std::env::args_os();
    if let Some(argv0) = argv.next()
        && overlayfs::invoked_as(&argv0)
    {
        return overlayfs::main_as_overlayfs(argv.collect());
    }
    // Usage errors exit 125 like Docker's and Podman's; --help and --version 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_FAILED } else { 0 };
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Check(a) => check::run(a, &cli.root),
        Command::Pull(a) => pull::run(a, open_store(&cli.root)),
        Command::Push(a) => pull::push(a, open_store(&cli.root)),
        Command::Login(a) => login::login(a),
        Command::Logout(a) => login::logout(a),
        Command::Load(a) => transfer::load(a, open_store(&cli.root)),
        Command::Import(a) => transfer::import(a, open_store(&cli.root)),
        Command::Save(a) => transfer::save(a, open_store(&cli.root)),
        Command::Images(a) => images::images(a, open_store(&cli.root)),
        Command::Inspect(a) => images::inspect(a, open_store(&cli.root)),
        Command::Tag(a) => images::tag(a, open_store(&cli.root)),
        Command::Rmi(a) => images::rmi(a, open_store(&cli.root)),
        Command::History(a) => images::history(a, open_store(&cli.root)),
        Command::Rollback(a) => images::rollback(a, open_store(&cli.root)),
        Command::Prune(a) => images::prune(a, open_store(&cli.root)),
        Command::Run(a) => run::run(*a, open_store(&cli.root)),
        Command::Ps(a) => containers::ps(a, open_store(&cli.root)),
        Command::Rm(a) => containers::rm(a, open_store(&cli.root)),
        Command::Rename(a) => containers::rename(a, open_store(&cli.root)),
        Command::Top(a) => container::top(a, open_store(&cli.root)),
        Command::Exec(a) => exec::exec(a, open_store(&cli.root)),
        Command::Logs(a) => lifecycle::logs(a, open_store(&cli.root)),
        Command::Start(a) => lifecycle::start(a, open_store(&cli.root)),
        Command::Stop(a) => lifecycle::stop(a, open_store(&cli.root)),
        Command::Attach(a) => lifecycle::attach(a, open_store(&cli.root)),
        Command::Restart(a) => lifecycle::restart(a, open_store(&cli.root)),
        Command::Kill(a) => lifecycle::kill(a, open_store(&cli.root)),
        Command::Wait(a) => lifecycle::wait(a, open_store(&cli.root)),
        Command::Keep(a) => lifecycle::keep(a, open_store(&cli.root)),
        Command::Cp(a) => copy::cp(a, open_store(&cli.root)),
        Command::Export(a) => copy::export(a, open_store(&cli.root)),
        Command::Diff(a) => commit::diff(a, open_store(&cli.root)),
        Command::Commit(a) => commit::commit(a, open_store(&cli.root)),
        Command::Build(a) => build::build(a, open_store(&cli.root)),
        Command::BuildRun(a) => build::build_run(a),
        Command::Container(a) => container::container(a, open_store(&cli.root)),
        Command::Verify(a) => verify::verify(a, open_store(&cli.root)),
        Command::Volume(a) => volume::run(a, open_store(&cli.root)),
        Command::Overlay(a) => overlay::run(a),
        Command::Overlayfs(a) => overlayfs::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Init(a) => project::init(a),
        Command::Lock(a) => project::lock(a, open_store(&cli.root)),
        Command::Shell(a) => project::shell(a, open_store(&cli.root)),
        Command::Up(a) => project::up(a, open_store(&cli.root)),
        Command::Down(a) => project::down(a, open_store(&cli.root)),
        Command::Completion(a) => completion::run(a),
        Command::Man(a) => manpages::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hutch: error: {e:#}");
            match e.downcast_ref::<crate::error::ExitWith>() {
                Some(x) => x.code,
                None => EXIT_FAILED,
            }
        }
    }
}
