//! RUN: the command in a hutch sandbox on the overlay of the layers so far,
//! and what it changed as one new layer.
//!
//! The sandbox is the default profile's confinement (Docker's seccomp
//! policy and capabilities, no new privileges), root inside on the user's
//! subordinate ids (or the one-id map), the build's network (or
//! `--network=none` of the RUN), no host home, the stage's ENV, WORKDIR
//! and USER, and the ARGs in scope in its environment. Its upper dir is a
//! fresh one in the store's `tmp/` (named with hutch's pid, so a killed
//! build's is swept later), made a layer tar as `hutch commit` does, with
//! the files' mtimes clamped to SOURCE_DATE_EPOCH when it is set.
//!
//! The launcher must start from a single-threaded process (it unshares
//! the user namespace), and a build has threads, so each RUN is its own
//! `hutch __build-run DIR` process, which reads the spec from DIR and
//! dies with the build (PDEATHSIG).
//!
//! `RUN --mount`: `type=cache` binds a directory kept in the store's
//! build cache (`build-cache/mounts/`), `type=secret` binds the file given
//! by `--secret id=ID,src=PATH` read-only (at `/run/secrets/ID` or its
//! target), `type=tmpfs` a tmpfs, `type=bind` a directory of the context
//! or of another stage, read-only. The mount points these need, when the
//! image did not have them, are removed from the upper dir before it
//! becomes the layer, so neither a secret nor its path is in the image.

use super::containerfile::instruction::{Command, Network, Run};
use super::containerfile::mount::{Mount, MountKind};
use super::image_state::ImageState;
use crate::profile::NetworkMode;
use crate::run::users::Accounts;
use crate::sandbox::caps::CapLevel;
use crate::sandbox::seccomp::SeccompLevel;
use crate::sandbox::spec::*;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// PATH when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The build-wide settings a RUN uses.
pub(crate) struct RunSettings<'a> {
    pub(crate) store: &'a Store,
    /// The build's `--network` mode and slirp options.
    pub(crate) network: NetworkMode,
    pub(crate) allow_host_loopback: bool,
    /// `--secret id=ID,src=PATH`.
    pub(crate) secrets: &'a BTreeMap<String, PathBuf>,
    /// Predefined proxy ARGs given with --build-arg: in RUN's environment,
    /// never in a cache key or the image.
    pub(crate) proxy_env: &'a [String],
    /// The context directory (source of `type=bind` without `from`).
    pub(crate) context: &'a Path,
}

/// A RUN ready to start: its sandbox spec and what to clean afterwards.
pub(crate) struct Prepared {
    pub(crate) dir: PathBuf,
    pub(crate) spec: SandboxSpec,
    /// Container paths the mounts needed (removed from the upper dir when
    /// the image had no such path).
    pub(crate) mount_points: Vec<String>,
}

/// The command's argv: exec form as is; shell form through SHELL, with
/// its here-documents. A RUN that is only one here-document runs its body
/// as the script (BuildKit's rule).
pub(crate) fn argv(state: &ImageState, run: &Run) -> Vec<String> {
    match &run.command {
        Command::Exec(v) => v.clone(),
        Command::Shell(text) => {
            let mut shell = state.shell();
            let only_heredoc = run.heredocs.len() == 1 && {
                let t = text.trim();
                t.starts_with("<<") && !t.contains(char::is_whitespace)
            };
            let script = if only_heredoc {
                run.heredocs[0].body.clone()
            } else {
                let mut s = text.clone();
                for h in &run.heredocs {
                    s.push('\n');
                    s.push_str(&h.body);
                    s.push_str(&h.name);
                }
                s
            };
            shell.push(script);
            shell
        }
    }
}

/// Plan the sandbox of a RUN on `state`; `dir` (in the store's tmp/) is
/// made to hold its upper dir, work dir, mount point and /etc files.
/// `stage_dirs` are the roots of stages a `--mount=from=` names.
pub(crate) fn prepare(
    settings: &RunSettings,
    state: &ImageState,
    run: &Run,
    args: &BTreeMap<String, String>,
    stage_dirs: &BTreeMap<String, PathBuf>,
) -> Result<Prepared> {
    let store = settings.store;
    let lowers = state.lowers(store)?;
    let dir = store.tmp_path("build-run");
    for sub in ["upper", "work", "rootfs"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let accounts = Accounts::of_image(&lowers);
    let user_text = state.field("User");
    let user = if user_text.is_empty() {
        UserSpec {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            name: "root".into(),
        }
    } else {
        accounts
            .resolve(user_text)
            .with_context(|| format!("USER {user_text}"))?
    };
    let mut env = state.env();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOME") {
        env.push(format!(
            "HOME={}",
            accounts.home_of(user.uid).unwrap_or("/")
        ));
    }
    // ARGs are in RUN's environment unless ENV set the same name.
    for (k, v) in args {
        if !has(&env, k) {
            env.push(format!("{k}={v}"));
        }
    }
    for kv in settings.proxy_env {
        let k = kv.split('=').next().unwrap_or("");
        if !has(&env, k) {
            env.push(kv.clone());
        }
    }
    let cwd = match state.field("WorkingDir") {
        "" => "/".to_string(),
        w => w.to_string(),
    };
    let network = match run.network {
        Some(Network::None) => NetworkMode::None,
        Some(Network::Host) => bail!(
            "RUN --network=host: a build's RUN does not share the host's network \
             (use the default, or --network=none)"
        ),
        Some(Network::Default) | None => settings.network,
    };
    let (mounts, mount_points) = mounts(settings, &run.mounts, stage_dirs, &dir)?;
    let dns_upstreams = if network == NetworkMode::Slirp {
        crate::run::net::dns_upstreams()?
    } else {
        Vec::new()
    };
    let id = crate::store::containers::new_id()?;
    let spec = SandboxSpec {
        id: id.clone(),
        name: format!("build-{}", &id[..12.min(id.len())]),
        image: "(build)".into(),
        image_id: "(build)".into(),
        profile: crate::profile::DEFAULT_PROFILE.into(),
        rootfs: RootfsSpec {
            layers: state
                .diff_ids()?
                .iter()
                .rev()
                .map(|d| d.to_string())
                .collect(),
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            mountpoint: dir.join("rootfs"),
            etc: dir.join("etc"),
            read_only: false,
            host: false,
        },
        process: ProcessSpec {
            args: argv(state, run),
            env,
            cwd,
            user,
            terminal: false,
            stdin: false,
            preserve_fds: 0,
            add_accounts: AddAccounts::default(),
            pause: false,
        },
        hostname: "hutch-build".into(),
        id_maps: crate::run::idmap::plan(false),
        mounts,
        network,
        net: NetSpec {
            allow_host_loopback: settings.allow_host_loopback,
            block_private: false,
            mtu: 65520,
            publish: Vec::new(),
            dns_upstreams,
            join: None,
            add_hosts: Vec::new(),
        },
        security: SecuritySpec {
            seccomp: SeccompLevel::Default,
            capabilities: CapabilitySet::of(&CapLevel::Default)?,
            no_new_privs: true,
            landlock: None,
            share_terminal: true,
        },
        limits: Default::default(),
        remove: true,
        stop_signal: None,
        stop_timeout: None,
    };
    if spec.process.args.is_empty() {
        bail!("RUN with nothing to run");
    }
    Ok(Prepared {
        dir,
        spec,
        mount_points,
    })
}

/// The RUN's `--mount`s as sandbox mounts, and their container paths.
fn mounts(
    settings: &RunSettings,
    list: &[Mount],
    stage_dirs: &BTreeMap<String, PathBuf>,
    dir: &Path,
) -> Result<(Vec<MountSpec>, Vec<String>)> {
    let mut out = Vec::new();
    let mut points = Vec::new();
    for m in list {
        let target = |default: Option<String>| -> Result<String> {
            let t = m.target.clone().or(default).with_context(|| {
                format!("RUN --mount=type={}: give target=PATH", kind_name(&m.kind))
            })?;
            Ok(if t.starts_with('/') {
                t
            } else {
                format!("/{t}")
            })
        };
        let spec = match m.kind {
            MountKind::Cache => {
                let target = target(None)?;
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let source = settings
                    .store
                    .build_cache_dir()
                    .join("mounts")
                    .join(crate::oci::Digest::of(id.as_bytes()).hex());
                std::fs::create_dir_all(&source)
                    .with_context(|| format!("creating the cache mount {}", source.display()))?;
                MountSpec::Bind {
                    source,
                    destination: target,
                    read_only: m.readonly.unwrap_or(false),
                    copy_up: false,
                }
            }
            MountKind::Secret => {
                let id = m.id.clone().or_else(|| {
                    m.target
                        .as_ref()
                        .and_then(|t| t.rsplit('/').next().map(String::from))
                });
                let Some(id) = id else {
                    bail!("RUN --mount=type=secret: give id=ID");
                };
                let Some(src) = settings.secrets.get(&id) else {
                    if m.required.unwrap_or(false) {
                        bail!(
                            "RUN --mount=type=secret,id={id}: no such secret; give it with \
                             `--secret id={id},src=PATH`"
                        );
                    }
                    continue;
                };
                // The secret is copied into the RUN's own directory, so the
                // sandbox binds a file only it can name.
                let copy = dir.join(format!("secret-{}", out.len()));
                let data = std::fs::read(src)
                    .with_context(|| format!("reading the secret {id} from {}", src.display()))?;
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    // Mode 0400 (root's inside, as Docker), or the mount's
                    // `mode=`, whatever the source's mode.
                    let mode = match &m.mode {
                        Some(t) => u32::from_str_radix(t, 8)
                            .ok()
                            .filter(|m| *m <= 0o777)
                            .with_context(|| {
                                format!(
                                    "RUN --mount=type=secret,mode={t}: give octal bits like 0444"
                                )
                            })?,
                        None => 0o400,
                    };
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(mode)
                        .open(&copy)
                        .and_then(|mut f| f.write_all(&data))
                        .with_context(|| format!("copying the secret {id}"))?;
                }
                MountSpec::Bind {
                    source: copy,
                    destination: target(Some(format!("/run/secrets/{id}")))?,
                    read_only: true,
                    copy_up: false,
                }
            }
            MountKind::Tmpfs => MountSpec::Tmpfs {
                destination: target(None)?,
                options: "mode=1777".into(),
            },
            MountKind::Bind => {
                let root = match &m.from {
                    Some(from) => stage_dirs
                        .get(from)
                        .cloned()
                        .with_context(|| format!("RUN --mount=from={from}: not built"))?,
                    None => settings.context.to_path_buf(),
                };
                let rel = m.source.clone().unwrap_or_default();
                let source = super::stage_tree::inside_no_symlinks(&root, &rel)
                    .context("RUN --mount=type=bind: the source")?;
                MountSpec::Bind {
                    source,
                    destination: target(None)?,
                    read_only: m.readonly.is_none_or(|r| r),
                    copy_up: false,
                }
            }
            _ => bail!(
                "RUN --mount=type={}: hutch supports cache, secret, tmpfs and bind mounts",
                kind_name(&m.kind)
            ),
        };
        points.push(spec.destination().to_string());
        out.push(spec);
    }
    out.sort_by_key(|m| m.destination().matches('/').count());
    Ok((out, points))
}

fn kind_name(k: &MountKind) -> String {
    format!("{k:?}").to_ascii_lowercase()
}

/// Run a prepared RUN in its own `hutch __build-run` process; its exit
/// status. `output`: where the command's stdout and stderr go (None:
/// hutch's stderr).
pub(crate) fn execute(prepared: &Prepared, output: Option<&std::fs::File>) -> Result<i32> {
    crate::run::spec_file::save(&prepared.dir, &prepared.spec)?;
    let exe = std::env::current_exe().context("finding the hutch binary to run a RUN step")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__build-run")
        .arg(&prepared.dir)
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null());
    match output {
        Some(f) => {
            cmd.stdout(f.try_clone()?).stderr(f.try_clone()?);
        }
        None => {
            let err = std::io::stderr().as_fd().try_clone_to_owned()?;
            cmd.stdout(std::process::Stdio::from(err.try_clone()?))
                .stderr(std::process::Stdio::from(err));
        }
    }
    let status = cmd.status().context("starting the process of a RUN step")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

use std::os::fd::AsFd;

/// `hutch __build-run DIR PPID`: the process of one RUN. It dies with the
/// build (`PPID`, checked after asking for PDEATHSIG, so a build killed
/// meanwhile is not outlived), then launches the spec in DIR in the
/// foreground; the command's exit status.
pub(crate) fn serve(dir: &Path, ppid: i32) -> Result<i32> {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(ppid) {
        bail!("the build that started this RUN has ended");
    }
    let spec = crate::run::spec_file::load(dir, "build step")?;
    crate::sandbox::etc_files::write(&spec)?;
    crate::sandbox::launch::run(
        &spec,
        None,
        &|text| tracing::info!("{}", text.trim_start_matches("hutch: warning: ")),
        None,
        None,
    )
}

/// Remove from the upper dir the mount points made for `points` where no
/// lower layer has that path (and then their parents made for them, when
/// empty), so the layer holds none of them.
pub(crate) fn remove_mount_points(upper: &Path, lowers: &[PathBuf], points: &[String]) {
    for p in points {
        let mut rel = PathBuf::from(p.trim_start_matches('/'));
        let mut first = true;
        while !rel.as_os_str().is_empty() {
            let in_lower = lowers
                .iter()
                .any(|l| l.join(&rel).symlink_metadata().is_ok());
            if in_lower {
                break;
            }
            let path = upper.join(&rel);
            let removed = match path.symlink_metadata() {
                Ok(m) if m.is_dir() => std::fs::remove_dir(&path).is_ok(),
                Ok(m) if first && m.len() == 0 => std::fs::remove_file(&path).is_ok(),
                _ => false,
            };
            if !removed {
                break;
            }
            first = false;
            rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        }
    }
}

/// Whether the upper dir holds no change: only directories the layers
/// below have too, with the same owner and mode (the parents of the
/// launcher's mount points, copied up to hold them).
pub(crate) fn changed_nothing(upper: &Path, lowers: &[PathBuf]) -> Result<bool> {
    use crate::image::upper::{Entry, Kind, walk};
    /// Ends the walk at the first change.
    #[derive(Debug, thiserror::Error)]
    #[error("a change")]
    struct Changed;
    let walked = walk(upper, lowers, &mut |e: Entry| {
        let rel = Path::new(std::ffi::OsStr::from_bytes(&e.path));
        let same_dir = matches!(e.kind, Kind::Dir { opaque: false })
            && lowers.iter().any(|l| {
                let p = l.join(rel);
                p.symlink_metadata().is_ok_and(|m| m.is_dir())
                    && lower_dir_matches(&p, e.uid, e.gid, e.mode)
            });
        if same_dir {
            Ok(())
        } else {
            Err(Changed.into())
        }
    });
    match walked {
        Ok(()) => Ok(true),
        Err(e) if e.downcast_ref::<Changed>().is_some() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the lower directory at `p` has this owner and mode (its
/// override record, or 0:0 and its own mode).
fn lower_dir_matches(p: &Path, uid: u32, gid: u32, mode: u32) -> bool {
    use crate::overlay::format;
    let Ok(fd) = rustix::fs::open(
        p,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    match format::read_override_stat(&fd) {
        Ok(Some(o)) => o.uid == uid && o.gid == gid && (o.mode & 0o7777) == mode,
        Ok(None) => rustix::fs::fstat(&fd)
            .is_ok_and(|st| uid == 0 && gid == 0 && (st.st_mode & 0o7777) == mode),
        Err(_) => false,
    }
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::containerfile::{Instruction, parse};

    fn run_of(text: &str) -> Run {
        match parse(&format!("FROM scratch\n{text}")).unwrap().steps[1]
            .instruction
            .clone()
        {
            Instruction::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argv_forms() {
        let s = ImageState::scratch();
        assert_eq!(
            argv(&s, &run_of("RUN [\"/bin/true\", \"x\"]\n")),
            ["/bin/true", "x"]
        );
        assert_eq!(
            argv(&s, &run_of("RUN echo hi\n")),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            argv(&s, &run_of("RUN <<EOF\necho a\necho b\nEOF\n")),
            ["/bin/sh", "-c", "echo a\necho b\n"]
        );
        assert_eq!(
            argv(&s, &run_of("RUN cat <<EOF > /f\nhello\nEOF\n")),
            ["/bin/sh", "-c", "cat <<EOF > /f\nhello\nEOF"]
        );
    }

    #[test]
    fn mount_points_the_image_had_stay() {
        let d = tempfile::tempdir().unwrap();
        let (upper, lower) = (d.path().join("u"), d.path().join("l"));
        std::fs::create_dir_all(upper.join("run/secrets")).unwrap();
        std::fs::write(upper.join("run/secrets/tok"), "").unwrap();
        std::fs::create_dir_all(upper.join("cache/x")).unwrap();
        std::fs::create_dir_all(lower.join("cache")).unwrap();
        std::fs::create_dir_all(upper.join("kept")).unwrap();
        std::fs::write(upper.join("kept/file"), "data").unwrap();
        remove_mount_points(
            &upper,
            std::slice::from_ref(&lower),
            &[
                "/run/secrets/tok".into(),
                "/cache/x".into(),
                "/kept/file".into(),
            ],
        );
        assert!(!upper.join("run").exists(), "made only for the secret");
        assert!(!upper.join("cache/x").exists());
        assert!(upper.join("cache").exists(), "the image has /cache");
        assert!(
            upper.join("kept/file").exists(),
            "a file with content stays"
        );
    }
}
