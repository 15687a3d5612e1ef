//! Helpers shared by the integration tests (`mod common;` in each tests/*.rs).
//!
//! The tests run the real `hutch` binary as an unprivileged user, on
//! fixtures built by `tests/run.sh` (see tests/fixtures/README.md). Each test
//! gets its own store in a temporary directory, so tests never share state.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod faulty_proxy;
pub mod registry;

/// Default fixture directory; `HUTCH_FIXTURES` overrides it.
pub const DEFAULT_FIXTURES: &str = "/var/cache/hutch-fixtures";

/// Panic unless running as an unprivileged user: hutch is rootless and
/// tests that pass as root prove nothing about that.
pub fn assert_unprivileged() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_ne!(
        euid, 0,
        "integration tests must run as an unprivileged user: use tests/run.sh"
    );
}

/// The hutch binary under test: `HUTCH_BIN` (set by tests/run.sh to a staged
/// copy the test user can read), else the one cargo built for this test.
pub fn hutch_bin() -> PathBuf {
    match std::env::var_os("HUTCH_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_hutch")),
    }
}

/// The fixture directory (`HUTCH_FIXTURES`, else /var/cache/hutch-fixtures).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("HUTCH_FIXTURES") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_FIXTURES),
    }
}

/// Path of one fixture, e.g. `fixture("busybox-oci.tar")`; panics if absent.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(
        path.exists(),
        "fixture {name} missing: run tests/run.sh (looked for {})",
        path.display()
    );
    path
}

/// A private hutch store in a temporary directory, removed on drop.
///
/// Layout of the temporary directory: `store/` is the store root (exists,
/// empty at first; passed as `HUTCH_ROOT`), `home/` is `HOME` and holds the
/// XDG config/data/cache directories, so hutch never touches the real home.
pub struct TestStore {
    dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl TestStore {
    pub fn new() -> TestStore {
        assert_unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("hutch-test-")
            .tempdir()
            .expect("create a temporary directory for the test store");
        let root = dir.path().join("store");
        let home = dir.path().join("home");
        for d in [
            root.clone(),
            home.join(".config"),
            home.join(".local/share"),
            home.join(".cache"),
        ] {
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        TestStore { dir, root, home }
    }

    /// The store root (`HUTCH_ROOT`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `HOME` of the hutch processes this store starts.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The temporary directory holding store and home; free for scratch files
    /// (use a subdirectory of your own).
    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }

    /// A `hutch` command bound to this store (through `HUTCH_ROOT`, so no
    /// `--root` is needed) and to a private HOME/XDG environment.
    pub fn hutch(&self) -> Command {
        self.command(hutch_bin())
    }

    /// `program` with the environment `hutch()` gets (store, HOME, XDG
    /// directories), for scripts that call hutch themselves.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        assert_unprivileged();
        let mut cmd = Command::new(program);
        cmd.env("HUTCH_ROOT", &self.root)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Run hutch with `args`, assert exit status 0, return its stdout.
    pub fn run_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (shown, out) = self.run(args);
        if !out.status.success() {
            panic!(
                "`{shown}` failed ({}), expected success\n{}",
                out.status,
                describe(&out)
            );
        }
        String::from_utf8(out.stdout)
            .unwrap_or_else(|e| panic!("`{shown}`: stdout is not UTF-8: {e}"))
    }

    /// Run hutch with `args`, assert it exited non-zero (not by a signal),
    /// return its exit code and stderr.
    pub fn run_fail<I, S>(&self, args: I) -> (i32, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (shown, out) = self.run(args);
        match out.status.code() {
            Some(0) => panic!("`{shown}` succeeded, expected failure\n{}", describe(&out)),
            Some(code) => (code, String::from_utf8_lossy(&out.stderr).into_owned()),
            None => panic!(
                "`{shown}` was killed by a signal ({})\n{}",
                out.status,
                describe(&out)
            ),
        }
    }

    /// Run hutch with `args` and return the command line (for messages) and
    /// its full output, whatever the exit status.
    pub fn run<I, S>(&self, args: I) -> (String, Output)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let shown = std::iter::once("hutch".to_string())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let out = self
            .hutch()
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", hutch_bin().display()));
        (shown, out)
    }

    /// `hutch run --rm --network none IMAGE COMMAND...`, asserted to exit
    /// 0; its stdout.
    pub fn run_offline(&self, image: &str, command: &[&str]) -> String {
        let mut args = vec!["run", "--rm", "--network", "none", image];
        args.extend_from_slice(command);
        self.run_ok(args)
    }

    /// Every path in the store, with type, mode and size (see `tree_listing`).
    pub fn listing(&self) -> Vec<String> {
        tree_listing(&self.root)
    }
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Exit status, stdout and stderr of a finished command, for panic messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every path under `dir` (relative, sorted), one string each:
/// `"<kind> <mode> <size> <path>"` with kind `d`, `f`, `l` (with `-> target`)
/// or `o`; directory sizes are left out. Compare two listings to check that
/// a failed command left a store unchanged. A missing `dir` lists as empty.
pub fn tree_listing(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) => {
                let rel = dir.strip_prefix(base).unwrap().display().to_string();
                out.push(format!("! unreadable {rel}: {:?}", e.kind()));
                return;
            }
        };
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_dir() {
                out.push(format!("d {mode:04o} - {rel}"));
                walk(base, &path, out);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                out.push(format!("l {mode:04o} - {rel} -> {}", target.display()));
            } else if ft.is_file() {
                out.push(format!("f {mode:04o} {} {rel}", meta.len()));
            } else {
                out.push(format!("o {mode:04o} - {rel}"));
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// A store with the busybox image and a user profile `hostlo` (slirp, the
/// host's loopback reachable as 10.0.2.2), for the network tests.
pub fn busybox_with_hostlo_profile() -> TestStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hostlo.toml"),
        "extends = \"default\"\n[network]\nmode = \"slirp\"\nallow_host_loopback = true\n",
    )
    .unwrap();
    st
}

/// A pty pair for a caller's terminal: (controller, terminal). Give the
/// terminal side to hutch as its 0, 1 and 2; read what appeared on it from
/// the controller with [`read_pty`].
pub fn pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    (master, slave)
}

/// Everything written to the terminal of `master` so far (call it once the
/// program on the terminal has exited; the terminal side must still be
/// open, or the kernel may discard what was written).
pub fn read_pty(master: &std::os::fd::OwnedFd) -> String {
    rustix::fs::fcntl_setfl(master, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut shown = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(master, &mut buf) {
        if n == 0 {
            break;
        }
        shown.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&shown).into_owned()
}

/// GET `path` over HTTP/1.0 from 127.0.0.1:`port` until the answer
/// satisfies `done`, retrying every 100 ms for at most `wait` (the server
/// in the container may not listen yet). The whole answer, or what the
/// last try gave.
pub fn http_get_until(
    port: u16,
    path: &str,
    wait: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    loop {
        let r = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut v = String::new();
            s.read_to_string(&mut v)?;
            Ok(v)
        });
        match r {
            Ok(v) if done(&v) => return Ok(v),
            _ if t0.elapsed() < wait => std::thread::sleep(Duration::from_millis(100)),
            other => {
                return Err(format!(
                    "no answer to GET {path} on 127.0.0.1:{port} within {wait:?}: {other:?}"
                ));
            }
        }
    }
}

/// pids (other than this test process) whose command line contains
/// `needle`: what a container left running, if anything.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Rootless podman with a throwaway store of its own in `dir` (vfs
/// storage, cgroupfs, runc: what works for an unprivileged user on any
/// host the tests run on).
#[allow(dead_code)]
pub fn podman(dir: &Path) -> Command {
    podman_storage(dir, &["--storage-driver", "vfs"])
}

/// [`podman`] with other storage options (`--storage-driver overlay
/// --storage-opt overlay.mount_program=...`).
#[allow(dead_code)]
pub fn podman_storage(dir: &Path, storage: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(storage)
        .args([
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            "runc",
        ]);
    c.env("XDG_RUNTIME_DIR", dir.join("xdg"));
    std::fs::create_dir_all(dir.join("xdg")).unwrap();
    c
}

/// A store with the busybox fixture loaded as `busybox` that removes every
/// container it still has when the test ends (pass or fail): for the tests
/// of detached containers, which must leave no keeper behind.
#[allow(dead_code)]
pub struct ContainerStore(TestStore);

impl std::ops::Deref for ContainerStore {
    type Target = TestStore;
    fn deref(&self) -> &TestStore {
        &self.0
    }
}

impl Drop for ContainerStore {
    fn drop(&mut self) {
        let ids = self.0.run(["ps", "-aq"]).1.stdout;
        for id in String::from_utf8_lossy(&ids).split_whitespace() {
            let _ = self.0.run(["rm", "-f", id]);
        }
    }
}

/// A [`ContainerStore`] with busybox loaded.
#[allow(dead_code)]
pub fn busybox() -> ContainerStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    ContainerStore(st)
}

/// Whether `cond` holds within `secs` seconds (checked every 50 ms).
#[allow(dead_code)]
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cond()
}
