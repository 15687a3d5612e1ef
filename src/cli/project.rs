//! Project environments (issue 17): `hutch init`, `hutch lock`,
//! `hutch shell`, `hutch up`, `hutch down`.

use crate::cli::flags::TlsVerify;
use crate::project::images::Fetch;
use crate::project::lock::Mode;
use crate::project::locking::{LockRequest, lock as run_lock};
use crate::project::manifest;
use crate::store::Store;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The environment's image [default: debian:stable]
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// The project's root directory, made if missing [default: the current directory]
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn init(a: InitArgs) -> Result<i32> {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("."));
    let path = manifest::write_template(&dir, a.image.as_deref())?;
    println!(
        "wrote {}: edit it to describe the project's environment and services",
        path.display()
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LockArgs {
    /// Resolve again, as the registries have them now, these image references or the images of these sections (`env`, a service's name); all of them without a name
    #[arg(long, value_name = "REF|NAME", num_args = 0.., conflicts_with = "frozen")]
    update: Option<Vec<String>>,
    /// Resolve nothing: fail unless hutch.lock is current and pins every image (for CI)
    #[arg(long)]
    frozen: bool,
    #[command(flatten)]
    tls: TlsVerify,
    /// A directory of the project (its root is the nearest with hutch.toml)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

pub fn lock(a: LockArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let mode = match (a.update, a.frozen) {
        (Some(names), _) => Mode::Update(names),
        (None, true) => Mode::Frozen,
        (None, false) => Mode::Keep,
    };
    let frozen = mode == Mode::Frozen;
    let root = crate::project::naming::find_root(&a.dir);
    let done = run_lock(
        &store,
        &LockRequest {
            root: root.clone(),
            mode,
            tls_verify: a.tls.tls_verify,
        },
    )?;
    for (reference, pins) in &done.lock.images {
        for (platform, digest) in pins {
            println!("{reference}\t{platform}\t{digest}");
        }
    }
    let file = root.join(crate::project::lock::LOCK_FILE);
    match (frozen, done.written) {
        (true, _) => eprintln!("{} is current", file.display()),
        (false, true) => eprintln!("wrote {}", file.display()),
        (false, false) => eprintln!("{} is unchanged", file.display()),
    }
    Ok(0)
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
Enters the project's environment (the hutch.toml at or above DIR): its
container is made on first use from hutch.lock (images pulled by their
pinned digests, builds, the setup layer) and kept; it is started again
when it stopped, and made again when hutch.lock changed. The project
directory is mounted at the same path and you are yourself inside (the
`dev` profile unless hutch.toml says otherwise). A second `hutch shell`
joins the same running environment; it stops when the last shell leaves,
unless the project was brought up with `hutch up` (until `hutch down`).

Exit status: the command's (125 when hutch fails).")]
pub struct ShellArgs {
    /// A directory of the project (its root is the nearest with hutch.toml)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    tls: TlsVerify,
    /// The command to run instead of the environment's shell (after --)
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn shell(a: ShellArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    crate::project::env::shell(
        &store,
        &crate::project::env::ShellRequest {
            dir: a.dir,
            command: a.command,
            fetch: Fetch {
                tls_verify: a.tls.tls_verify,
            },
        },
    )
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Return once every service is ready, leaving them running
    #[arg(short, long)]
    detach: bool,
    /// A directory of the project (its root is the nearest with hutch.toml)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    tls: TlsVerify,
}

pub fn up(a: UpArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    // Absolute: starting the environment enters the project's root.
    let dir = std::path::absolute(&a.dir).context("reading the current directory")?;
    let started = crate::project::services::up(
        &store,
        &crate::project::services::UpRequest {
            dir: dir.clone(),
            fetch: Fetch {
                tls_verify: a.tls.tls_verify,
            },
        },
    )?;
    if started.is_empty() {
        eprintln!("hutch: the project has no services; its environment is up until `hutch down`");
        return Ok(0);
    }
    if a.detach {
        return Ok(0);
    }
    eprintln!(
        "hutch: following the services' output; Ctrl-C stops them (`hutch up -d` leaves them running)"
    );
    let out = std::sync::Mutex::new(());
    crate::project::services::follow(&store, &dir, &|service, record| {
        let _one = out.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&record.bytes);
        let line = format!("{service} | {}", text);
        let line = if line.ends_with('\n') {
            line
        } else {
            line + "\n"
        };
        if crate::run::is_stdout(record) {
            std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes())?;
        } else {
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes())?;
        }
        Ok(())
    })?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove the project's named volumes too
    #[arg(short, long)]
    volumes: bool,
    /// A directory of the project (its root is the nearest with hutch.toml)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

pub fn down(a: DownArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let done = crate::project::services::down(&store, &a.dir, a.volumes)?;
    for name in &done.removed {
        eprintln!("hutch: removed container {name}");
    }
    for name in &done.volumes {
        eprintln!("hutch: removed volume {name}");
    }
    if done.removed.is_empty() && done.volumes.is_empty() {
        eprintln!("hutch: nothing of the project was there to remove");
    }
    Ok(0)
}
