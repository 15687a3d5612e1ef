//! `hutch-overlayfs` (hutch run under that name, e.g. through a symlink)
//! and `hutch overlayfs`: fuse-overlayfs's command line,
//! `PROG [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT`, mounting hutch's
//! overlay in the caller's own namespace and serving it in the background
//! until it is unmounted. This is how Podman
//! (`--storage-opt overlay.mount_program=PROG`) and the unionmount-testsuite
//! (`--fuse=PROG`, through mount(8) and mount.fuse3) drive an overlay
//! program.

use crate::overlay::idmap::{IdOptions, overflow_ids};
use crate::overlay::{OverlayConfig, ServeMode, serve_until_unmounted};
use anyhow::{Context, Result, bail};
use clap::Args;
use rustix::mount::MountFlags;
use std::ffi::OsString;
use std::path::PathBuf;

/// The name that makes the hutch binary behave as this command.
pub const PROGRAM_NAME: &str = "hutch-overlayfs";

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct OverlayfsArgs {
    /// fuse-overlayfs's arguments: [-f] [-d] [-o OPTS]... MOUNTPOINT (-h: all options)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

const USAGE: &str = "\
usage: hutch-overlayfs [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT
       hutch overlayfs [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT

Mounts hutch's FUSE overlay at MOUNTPOINT in the caller's mount namespace
(the caller must be root of a user namespace that owns it: `podman
unshare`, `unshare -Urm`), returns once the mount is ready and serves it
from a background process until it is unmounted (`umount MOUNTPOINT` or
`fusermount3 -u MOUNTPOINT`), as fuse-overlayfs does. A symlink named
hutch-overlayfs to the hutch binary can be Podman's
`--storage-opt overlay.mount_program=`.

  -f             serve in the foreground (until unmounted)
  -d, --debug    foreground, with debug logs on stderr
  -s             one serving thread
  -o OPTS        comma-separated options ('\\' escapes the next character):
     lowerdir=DIR[:DIR...]  read-only layers, top first (required); without
                            upperdir the mount is read-only
     upperdir=DIR           the writable layer
     workdir=DIR            scratch dir on the upper's filesystem (required
                            with upperdir)
     uidmapping=STORED:SHOWN:LEN[:STORED:SHOWN:LEN...]
     gidmapping=...         shift owners as fuse-overlayfs does: ids STORED..
                            STORED+LEN-1 in the layers (ownership record or
                            owner on disk) are shown as SHOWN..SHOWN+LEN-1,
                            others as the overflow id (65534); the caller's
                            ids of new files and the ids of a chown are
                            stored back the same way (unmapped: 65534)
     squash_to_root         show every file as owned by 0:0
     squash_to_uid=UID, squash_to_gid=GID
                            show every file as owned by UID (GID); wins over
                            squash_to_root. Only what is shown: new files and
                            chowns store the (mapped) ids, and a failed owner
                            change of a symlink, fifo or socket is ignored
     xattr_permissions=0|2  hutch always keeps owners and modes it cannot set
                            in user.containers.override_stat (what 2 means)
     noacl                  (hutch's overlay has no POSIX ACLs)
     writeback=0|1          the kernel's writeback cache (default 1)
     redirect_dir=on|off    on (default): a directory of a lower layer is
                            renamed with a redirect record in the upper dir,
                            as the kernel's redirect_dir=on; off (also
                            follow, nofollow): such a rename fails with EXDEV
                            and no record is written (for readers without
                            redirects, such as fuse-overlayfs)
     max_threads=N          serving threads
     fsname=NAME            the mount's source
     ro, nosuid, noexec, noatime, nodiratime, relatime, strictatime, sync,
     dirsync                mount flags (nodev is always set)
  Accepted and ignored: fsync=, volatile, timeout=, threaded=, fast_ino=,
  static_nlink, noxattrs=0, context=, fscontext=,
  defcontext=, rootcontext=, userxattr, index=off, metacopy=off,
  nfs_export=off, xino=off|auto, rw, suid, dev, exec, atime, diratime,
  norelatime, lazytime, async, defaults, x-*, and libfuse's generic options
  (allow_other, allow_root, default_permissions, auto_unmount, clone_fd,
  subtype=, max_read=, max_idle_threads=, kernel_cache, auto_cache,
  entry_timeout=, attr_timeout=, negative_timeout=).
  Refused: xattr_permissions=1, noxattrs=1, plugins=.
";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq)]
struct Cmdline {
    opts: Vec<String>,
    foreground: bool,
    debug: bool,
    single_thread: bool,
    help: bool,
    version: bool,
    mountpoint: Option<OsString>,
}

fn parse_cmdline(args: &[OsString]) -> Result<Cmdline> {
    let mut c = Cmdline::default();
    let mut it = args.iter();
    let mut only_positional = false;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if only_positional || !s.starts_with('-') || s == "-" {
            // fuse-overlayfs keeps the last non-option as the mount point
            // (mount.fuse3 passes the source before it).
            c.mountpoint = Some(a.clone());
            continue;
        }
        match s.as_ref() {
            "--" => only_positional = true,
            "-f" => c.foreground = true,
            "-d" | "--debug" => {
                c.debug = true;
                c.foreground = true;
            }
            "-s" => c.single_thread = true,
            "-h" | "--help" => c.help = true,
            "-V" | "--version" => c.version = true,
            "-o" => {
                let Some(v) = it.next() else {
                    bail!("-o needs a value (-o lowerdir=...,upperdir=...,workdir=...)");
                };
                let v = v
                    .to_str()
                    .context("mount options (-o) must be valid UTF-8")?;
                c.opts.extend(split_options(v));
            }
            o if o.starts_with("-o") => {
                let v = a
                    .to_str()
                    .context("mount options (-o) must be valid UTF-8")?;
                c.opts.extend(split_options(&v[2..]));
            }
            o => bail!("unknown argument {o:?} (hutch-overlayfs -h lists the arguments)"),
        }
    }
    Ok(c)
}

/// Split an `-o` value at the commas, libfuse's way: a backslash makes the
/// next character literal (`a\,b` is one option `a,b`); empty items drop.
fn split_options(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The overlay the options describe.
#[derive(Debug, PartialEq)]
struct OverlayOpts {
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    writeback: Option<bool>,
    redirect_dir: Option<bool>,
    threads: Option<usize>,
    fsname: Option<String>,
    flags: MountFlags,
    /// uidmapping=, gidmapping=, squash_to_*.
    ids: IdOptions,
}

/// Options accepted and ignored (fuse-overlayfs tuning, kernel overlay
/// options that describe what hutch does anyway, generic mount and libfuse
/// options with nothing to do here).
const IGNORED_FLAGS: &[&str] = &[
    "volatile",
    "static_nlink",
    "noacl",
    "userxattr",
    "rw",
    "suid",
    "dev",
    "nodev",
    "exec",
    "atime",
    "diratime",
    "norelatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "async",
    "defaults",
    "auto",
    "noauto",
    "nouser",
    "_netdev",
    "nofail",
    "silent",
    "loud",
    "allow_other",
    "allow_root",
    "default_permissions",
    "auto_unmount",
    "clone_fd",
    "kernel_cache",
    "auto_cache",
    "noforget",
    "hard_remove",
    "use_ino",
    "readdir_ino",
    "debug",
];

const IGNORED_KEYS: &[&str] = &[
    "fsync",
    "timeout",
    "threaded",
    "fast_ino",
    "context",
    "fscontext",
    "defcontext",
    "rootcontext",
    "subtype",
    "max_read",
    "max_idle_threads",
    "entry_timeout",
    "attr_timeout",
    "negative_timeout",
    "remember",
];

fn parse_options(opts: &[String]) -> Result<OverlayOpts> {
    let mut o = OverlayOpts {
        lowers: Vec::new(),
        upper: None,
        work: None,
        writeback: None,
        redirect_dir: None,
        threads: None,
        fsname: None,
        flags: MountFlags::empty(),
        ids: IdOptions::default(),
    };
    let mut lower_given = false;
    for opt in opts {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        let need = |what: &str| -> Result<&str> {
            value.with_context(|| format!("option {key} needs a value ({key}={what})"))
        };
        if o.ids.take(key, value)? {
            continue;
        }
        match key {
            "lowerdir" => {
                lower_given = true;
                // fuse-overlayfs splits at every ':' (no escape) and skips
                // empty items; a layer starting with "//" names a plugin.
                o.lowers = need("DIR[:DIR...]")?
                    .split(':')
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect();
                if let Some(p) = o
                    .lowers
                    .iter()
                    .find(|l| l.to_string_lossy().starts_with("//"))
                {
                    bail!(
                        "lower layer {}: fuse-overlayfs plugins (//PLUGIN/...) are not supported",
                        p.display()
                    );
                }
            }
            "upperdir" => o.upper = Some(PathBuf::from(need("DIR")?)),
            "workdir" => o.work = Some(PathBuf::from(need("DIR")?)),
            "xattr_permissions" => match need("0|2")? {
                "0" | "2" => {}
                "1" => bail!(
                    "xattr_permissions=1 (the privileged security.fuseoverlayfs.override_stat) \
                     is not supported: hutch keeps owners and modes in \
                     user.containers.override_stat, which is xattr_permissions=2"
                ),
                v => bail!("xattr_permissions={v}: expected 0, 1 or 2"),
            },
            "noxattrs" => match need("0|1")? {
                "0" => {}
                v => bail!(
                    "noxattrs={v} is not supported: hutch's overlay needs extended \
                     attributes for its on-disk format; drop the option"
                ),
            },
            "plugins" => bail!("option plugins= is not supported: hutch has no layer plugins"),
            "redirect_dir" => {
                o.redirect_dir = Some(match need("on|off")? {
                    "on" => true,
                    "off" | "follow" | "nofollow" => false,
                    v => bail!("redirect_dir={v}: expected on or off"),
                })
            }
            "writeback" => {
                o.writeback = Some(match need("0|1")? {
                    "0" => false,
                    "1" => true,
                    v => bail!("writeback={v}: expected 0 or 1"),
                })
            }
            "max_threads" => {
                let v = need("N")?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("max_threads={v}: expected a number above 0"))?;
                o.threads = Some(n);
            }
            "fsname" => o.fsname = Some(need("NAME")?.to_string()),
            "index" | "metacopy" | "nfs_export" | "xino" => match value {
                Some("off") => {}
                Some("auto") if key == "xino" => {}
                _ => bail!(
                    "option {opt} is not supported (a kernel overlayfs feature hutch's overlay \
                     does not have); drop it or use {key}=off"
                ),
            },
            _ if value.is_none() && mount_flag(key).is_some() => {
                o.flags |= mount_flag(key).unwrap_or(MountFlags::empty())
            }
            _ if value.is_none() && IGNORED_FLAGS.contains(&key) => {}
            _ if value.is_some() && IGNORED_KEYS.contains(&key) => {}
            _ if key.starts_with("x-") => {}
            _ => bail!(
                "unknown mount option {opt:?} (hutch-overlayfs -h lists the options it accepts)"
            ),
        }
    }
    if !lower_given || o.lowers.is_empty() {
        bail!("no lower layer: give -o lowerdir=DIR[:DIR...] (top first)");
    }
    match (&o.upper, &o.work) {
        (Some(_), None) => {
            bail!("upperdir needs a workdir on the same filesystem (-o workdir=DIR)")
        }
        (None, Some(_)) => {
            bail!("workdir given without upperdir (a read-only mount has no upper layer)")
        }
        _ => {}
    }
    Ok(o)
}

fn mount_flag(name: &str) -> Option<MountFlags> {
    Some(match name {
        "ro" => MountFlags::RDONLY,
        "nosuid" => MountFlags::NOSUID,
        "noexec" => MountFlags::NOEXEC,
        "noatime" => MountFlags::NOATIME,
        "nodiratime" => MountFlags::NODIRATIME,
        "relatime" => MountFlags::RELATIME,
        "strictatime" => MountFlags::STRICTATIME,
        "sync" => MountFlags::SYNCHRONOUS,
        "dirsync" => MountFlags::DIRSYNC,
        _ => return None,
    })
}

/// A private directory with empty `upper/` and `work/` for a read-only
/// mount (the overlay needs an upper layer; the kernel never lets a
/// read-only mount write to it). Removed when the server ends.
fn read_only_scratch() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for n in 0..100u32 {
        let d = base.join(format!("hutch-overlayfs-ro.{pid}.{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => {
                for sub in ["upper", "work"] {
                    std::fs::create_dir(d.join(sub))
                        .with_context(|| format!("creating {}", d.join(sub).display()))?;
                }
                return Ok(d);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", d.display()));
            }
        }
    }
    bail!("cannot create a scratch directory in {}", base.display())
}

/// Run with fuse-overlayfs's arguments (everything after the program name).
fn run_args(args: &[OsString]) -> Result<i32> {
    let c = parse_cmdline(args)?;
    if c.help {
        print!("{USAGE}");
        return Ok(0);
    }
    if c.version {
        println!(
            "hutch-overlayfs: hutch version {}",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    let o = parse_options(&c.opts)?;
    let Some(mountpoint) = c.mountpoint else {
        bail!(
            "no mount point given (usage: hutch-overlayfs -o lowerdir=...,upperdir=...,workdir=... MOUNTPOINT)"
        );
    };
    let mountpoint = PathBuf::from(mountpoint);
    for l in &o.lowers {
        if !l.is_dir() {
            bail!("lower layer {} is not a directory", l.display());
        }
    }
    let (upper, work, scratch, flags) = match (o.upper, o.work) {
        (Some(u), Some(w)) => {
            for (what, d) in [("upper", &u), ("work", &w)] {
                if !d.is_dir() {
                    bail!("{what} dir {} is not a directory", d.display());
                }
            }
            (u, w, None, o.flags)
        }
        _ => {
            let d = read_only_scratch()?;
            (
                d.join("upper"),
                d.join("work"),
                Some(d),
                o.flags | MountFlags::RDONLY,
            )
        }
    };
    let mut cfg = OverlayConfig::new(o.lowers, upper, work);
    cfg.flags = flags;
    cfg.threads = if c.single_thread { Some(1) } else { o.threads };
    if let Some(r) = o.redirect_dir {
        cfg.redirect_dir = r;
    }
    if let Some(wb) = o.writeback {
        cfg.writeback = wb;
    }
    if let Some(name) = o.fsname {
        cfg.fsname = name;
    }
    cfg.idmap = o.ids.build(overflow_ids());
    let mode = if c.foreground {
        ServeMode::Foreground
    } else {
        ServeMode::Background
    };
    let scratch_on_error = scratch.clone();
    serve_until_unmounted(cfg, &mountpoint, mode, scratch).inspect_err(|_| {
        if let Some(d) = scratch_on_error {
            let _ = std::fs::remove_dir_all(d);
        }
    })?;
    Ok(0)
}

/// `hutch overlayfs ARGS...`.
pub fn run(a: OverlayfsArgs) -> Result<i32> {
    run_args(&a.args)
}

/// Whether argv[0] names this command (`hutch-overlayfs`, any directory).
pub fn invoked_as(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == PROGRAM_NAME)
}

/// The whole program when run as `hutch-overlayfs`: exit 0 once the mount
/// is ready, 1 with a message on stderr otherwise (as fuse-overlayfs).
pub fn main_as_overlayfs(args: Vec<OsString>) -> i32 {
    let debug = parse_cmdline(&args).map(|c| c.debug).unwrap_or(false);
    super::init_logging(if debug { 2 } else { 0 });
    match run_args(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{PROGRAM_NAME}: error: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn opts(v: &str) -> Result<OverlayOpts> {
        parse_options(&split_options(v))
    }

    #[test]
    fn command_lines_of_podman_and_mount_fuse() {
        // Podman: PROG -o OPTS TARGET
        let c = parse_cmdline(&args(&[
            "-o",
            "lowerdir=/a:/b,upperdir=/u,workdir=/w",
            "/m",
        ]))
        .unwrap();
        assert_eq!(c.opts, ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"]);
        assert_eq!(c.mountpoint, Some("/m".into()));
        assert!(!c.foreground);
        // mount.fuse3: PROG SOURCE TARGET -o OPTS
        let c = parse_cmdline(&args(&[
            "hutch-overlayfs",
            "/m",
            "-o",
            "rw,lowerdir=/a",
            "-f",
        ]))
        .unwrap();
        assert_eq!(c.mountpoint, Some("/m".into()));
        assert_eq!(c.opts, ["rw", "lowerdir=/a"]);
        assert!(c.foreground);
        let c = parse_cmdline(&args(&["-olowerdir=/a", "-d", "/m"])).unwrap();
        assert_eq!(c.opts, ["lowerdir=/a"]);
        assert!(c.debug && c.foreground);
        assert!(parse_cmdline(&args(&["-x", "/m"])).is_err());
        assert!(parse_cmdline(&args(&["/m", "-o"])).is_err());
    }

    #[test]
    fn options_split_like_libfuse() {
        assert_eq!(split_options(r"a\,b,c,,d\\e"), ["a,b", "c", r"d\e"]);
    }

    #[test]
    fn layers_and_read_only() {
        let o = opts("lowerdir=/l2::/l1,upperdir=/u,workdir=/w").unwrap();
        assert_eq!(o.lowers, [PathBuf::from("/l2"), PathBuf::from("/l1")]);
        assert_eq!(o.upper, Some(PathBuf::from("/u")));
        let o = opts("lowerdir=/l,ro,nosuid").unwrap();
        assert_eq!(o.upper, None);
        assert!(o.flags.contains(MountFlags::RDONLY | MountFlags::NOSUID));
        assert!(opts("upperdir=/u,workdir=/w").is_err());
        assert!(opts("lowerdir=/l,upperdir=/u").is_err());
        assert!(opts("lowerdir=/l,workdir=/w").is_err());
        assert!(opts("lowerdir=//plugin//x").is_err());
    }

    #[test]
    fn podman_options_accepted() {
        let o = opts(
            "nodev,fsync=0,lowerdir=/a,upperdir=/u,workdir=/w,volatile,context=\"x\",\
             noacl,xattr_permissions=2,userxattr,uidmapping=0:0:65536,gidmapping=0:0:65536",
        )
        .unwrap();
        assert_eq!(o.lowers, [PathBuf::from("/a")]);
        assert!(o.ids.uidmapping.is_some() && o.ids.gidmapping.is_some());
    }

    #[test]
    fn id_shifting_options_taken() {
        // What containers-storage passes for `podman run --uidmap ...`.
        let o = opts(
            "lowerdir=/a,uidmapping=0:1:65536,gidmapping=0:1:1000:1000:5000:1,\
             squash_to_root,squash_to_uid=7,squash_to_gid=8",
        )
        .unwrap();
        assert_eq!(
            o.ids.uidmapping.as_deref(),
            Some(
                &[crate::overlay::idmap::IdRange {
                    stored: 0,
                    shown: 1,
                    len: 65536
                }][..]
            )
        );
        assert_eq!(o.ids.gidmapping.as_ref().map(|g| g.len()), Some(2));
        assert!(o.ids.squash_to_root);
        assert_eq!(
            (o.ids.squash_to_uid, o.ids.squash_to_gid),
            (Some(7), Some(8))
        );
        let m = o.ids.build((65534, 65534)).unwrap();
        assert_eq!((m.shown_uid(5), m.shown_gid(5)), (7, 8));
        // Control: without them there is no map.
        let o = opts("lowerdir=/a").unwrap();
        assert_eq!(o.ids.build((65534, 65534)), None);
        // Bad values name the option.
        for (bad, says) in [
            (
                "uidmapping=0:1000",
                "uidmapping=0:1000: expected STORED:SHOWN:LEN triples",
            ),
            ("gidmapping=0:1:4294967295", "runs past the largest id"),
            ("squash_to_uid=-1", "squash_to_uid=-1: expected an id"),
            ("squash_to_root=1", "takes no value"),
            ("uidmapping", "needs a value"),
        ] {
            let e = format!("{:#}", opts(&format!("lowerdir=/a,{bad}")).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn unsupported_options_refused() {
        for bad in [
            "gidmapping=0:0",
            "xattr_permissions=1",
            "noxattrs=1",
            "plugins=/x.so",
            "metacopy=on",
            "bogus",
            "writeback=2",
        ] {
            let e = opts(&format!("lowerdir=/a,{bad}")).unwrap_err();
            assert!(!format!("{e:#}").is_empty(), "{bad}");
        }
        assert!(opts("lowerdir=/a,uidmapping=0:1000:1:1:1:65536").is_ok());
    }

    #[test]
    fn argv0_dispatch_name() {
        assert!(invoked_as(std::ffi::OsStr::new(
            "/usr/local/bin/hutch-overlayfs"
        )));
        assert!(invoked_as(std::ffi::OsStr::new("hutch-overlayfs")));
        assert!(!invoked_as(std::ffi::OsStr::new("/usr/bin/hutch")));
    }
}
