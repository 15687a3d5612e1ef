//! What hutch's caller holds must not reach the container: descriptors of
//! every kind, the environment, the terminal. And PID 1 of the container,
//! which is in reach of everything the command runs, must hold nothing of
//! the host even when a profile grants every capability.
//!
//! Each attempt comes with a control that shows it works when the
//! protection is not in the way (`--preserve-fds`, a process of the
//! container other than init, the `default` profile's shared terminal).

mod common;

use common::{TestStore, describe, fixture};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Output, Stdio};

/// The host things a caller may hold open by accident: a directory with a
/// key in it, a file, a socket to a host service, a pipe.
struct Held {
    st: TestStore,
    dir: std::fs::File,
    file_path: std::path::PathBuf,
    file: std::fs::File,
    listener: UnixListener,
    client: std::os::unix::net::UnixStream,
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
}

fn held() -> Held {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let secret = st.tmp().join("dotssh");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("id_rsa"), b"SECRET-KEY\n").unwrap();
    let file_path = st.tmp().join("host-file");
    std::fs::write(&file_path, b"original\n").unwrap();
    let sock = st.tmp().join("svc.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let (pipe_r, pipe_w) = rustix::pipe::pipe().unwrap();
    Held {
        dir: std::fs::File::open(&secret).unwrap(),
        file: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file_path)
            .unwrap(),
        file_path,
        listener,
        client,
        pipe_r,
        pipe_w,
        st,
    }
}

const USE_FDS: &str = "for f in 3 4 5 6; do [ -e /proc/self/fd/$f ] && echo OPEN$f; done; \
     cat /proc/self/fd/3/id_rsa 2>/dev/null; \
     echo written-through-fd >&4 2>/dev/null; \
     echo sent-through-socket >&5 2>/dev/null; \
     echo sent-through-pipe >&6 2>/dev/null; \
     echo END";

impl Held {
    /// hutch run with the held things on the caller's 3, 4, 5, 6 (placed
    /// by the shell that starts hutch, as a user's shell would).
    fn run(&self, profile: &str, extra: &[&str]) -> Output {
        let raw = [
            self.dir.as_raw_fd(),
            self.file.as_raw_fd(),
            self.client.as_raw_fd(),
            self.pipe_w.as_raw_fd(),
        ];
        let work = self.st.tmp().join("work");
        std::fs::create_dir_all(&work).unwrap();
        // bash: dash takes only one-digit descriptors in redirections.
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg("exec \"$@\" 3<&50 4<&51 5<&52 6<&53 50<&- 51<&- 52<&- 53<&-")
            .arg("sh")
            .arg(common::hutch_bin())
            .args(["run", "--rm", "--profile", profile, "--network", "none"])
            .args(extra)
            .args(["busybox", "sh", "-c", USE_FDS])
            .current_dir(&work);
        for (k, v) in self.st.hutch().get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        // SAFETY: only dup2 between the fork and the exec, which is
        // async-signal-safe; the sources stay open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 50 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null()).output().unwrap()
    }

    /// What reached the host service and the pipe since the last call.
    fn received(&self) -> (String, String) {
        self.listener.set_nonblocking(true).unwrap();
        let (mut server, _) = self.listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut sock = Vec::new();
        let _ = server.read_to_end(&mut sock);
        // The listener's accepted side is kept for the next call.
        std::mem::forget(server);
        rustix::fs::fcntl_setfl(&self.pipe_r, rustix::fs::OFlags::NONBLOCK).unwrap();
        let mut pipe = vec![0u8; 4096];
        let n = rustix::io::read(&self.pipe_r, &mut pipe).unwrap_or(0);
        pipe.truncate(n);
        (
            String::from_utf8_lossy(&sock).into_owned(),
            String::from_utf8_lossy(&pipe).into_owned(),
        )
    }
}

#[test]
fn caller_descriptors_never_reach_the_container() {
    for profile in ["default", "untrusted"] {
        let h = held();
        let out = h.run(profile, &[]);
        assert_eq!(out.status.code(), Some(0), "{profile}\n{}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("END"), "{profile}\n{}", describe(&out));
        assert!(
            !stdout.contains("OPEN") && !stdout.contains("SECRET"),
            "{profile}: a caller's descriptor reached the container\n{}",
            describe(&out)
        );
        assert_eq!(std::fs::read(&h.file_path).unwrap(), b"original\n");
        let (sock, pipe) = h.received();
        assert_eq!((sock.as_str(), pipe.as_str()), ("", ""), "{profile}");

        // Control: passed on purpose, the same descriptors work, so the
        // script above would have used them.
        let h = held();
        let out = h.run(profile, &["--preserve-fds", "4"]);
        assert_eq!(out.status.code(), Some(0), "{profile}\n{}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for fd in 3..=6 {
            assert!(
                stdout.contains(&format!("OPEN{fd}")),
                "{profile}\n{}",
                describe(&out)
            );
        }
        let (sock, pipe) = h.received();
        // Even with no network, a socket handed through talks to the host.
        assert_eq!(
            sock,
            "sent-through-socket\n",
            "{profile}\n{}",
            describe(&out)
        );
        assert_eq!(pipe, "sent-through-pipe\n", "{profile}");
        if profile == "default" {
            assert!(stdout.contains("SECRET-KEY"), "{}", describe(&out));
            let content = std::fs::read_to_string(&h.file_path).unwrap();
            assert!(content.contains("written-through-fd"), "{content:?}");
        }
    }
}

#[test]
fn preserve_fds_refuses_what_the_caller_did_not_open() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let (code, err) = st.run_fail(["run", "--rm", "--preserve-fds", "2", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("descriptor 3 is not open"), "{err}");
}

#[test]
fn closed_standard_descriptors_are_not_taken_by_hutch_files() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    // hutch started with stdout closed: no file of hutch's may become the
    // container's stdout (the write must fail, not land somewhere).
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$@\" >&-")
        .arg("sh")
        .arg(common::hutch_bin())
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "l=$(readlink /proc/$$/fd/1); echo \"$l\" >&2; echo leaked",
        ]);
    for (k, v) in st.hutch().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, "/dev/null\n", "{}", describe(&out));
    // Control: the same run with stdout open prints it.
    let shown = st.run_offline("busybox", &["echo", "leaked"]);
    assert_eq!(shown, "leaked\n");
}

/// Every capability there is: what `--cap-add ALL` gives under Docker.
const ALL_CAPS: &[&str] = &hutch::CAPABILITIES;

/// perl printing `syscall(NR, ARGS)`'s result or errno (x86_64 numbers).
fn sys(nr: u32, args: &str) -> String {
    format!(
        "perl -e 'my @a = ({args}); $r = syscall({nr}, @a); print $r < 0 ? \"fail \" . ($! + 0) : \"ok\", \"\\n\"'"
    )
}

#[test]
fn init_holds_nothing_of_the_host_even_with_every_capability() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("uses x86_64 syscall numbers: skipped");
        return;
    }
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("allcaps.toml"),
        format!(
            "extends = \"default\"\n[security]\nseccomp = \"unconfined\"\ncapabilities = {ALL_CAPS:?}\n"
        ),
    )
    .unwrap();
    // PTRACE_ATTACH = 16, ptrace = 101.
    let script = format!(
        "echo ==fd; ls /proc/1/fd 2>&1; \
         echo ==environ; cat /proc/1/environ 2>&1 | tr '\\0' '\\n'; \
         echo ==walk; ls /proc/1/fd/3/../../.. 2>&1; ls /proc/1/cwd/ 2>&1 | head -3; \
         echo ==env; env; echo ==end; \
         echo attach-init: $({attach1}); \
         sleep 30 & pid=$!; until readlink /proc/$pid/exe | grep -q sleep; do :; done; \
         echo control-fd: $(ls /proc/$pid/fd | wc -l); \
         echo control-environ: $(tr '\\0' '\\n' < /proc/$pid/environ | grep -c CONTAINER_VAR); \
         echo attach-sibling: $({attach2}); kill -9 $pid",
        attach1 = sys(101, "16, 1, 0, 0"),
        attach2 = sys(101, "16, $ENV{pid} + 0, 0, 0").replace("perl -e", "pid=$pid perl -e"),
    );
    let out = st
        .hutch()
        .env("HUTCH_CALLER_SECRET", "hunter2")
        .args([
            "run",
            "--rm",
            "--profile",
            "allcaps",
            "--network",
            "none",
            "-e",
            "CONTAINER_VAR=1",
            "debian:bookworm",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        !s.contains("hunter2"),
        "the caller's secret reached the container\n{s}"
    );
    assert!(
        !s.contains("HUTCH_ROOT") && !s.contains("XDG_CONFIG_HOME"),
        "hutch's environment reached the container\n{s}"
    );
    assert!(
        s.contains("attach-init: fail 1\n"),
        "ptrace of init must be EPERM\n{s}"
    );
    // The text after the line `==NAME`, up to the next `==` line.
    let section = |name: &str| -> String {
        let marker = format!("=={name}\n");
        let start = s.find(&marker).unwrap() + marker.len();
        let rest = &s[start..];
        rest[..rest.find("\n==").map(|i| i + 1).unwrap_or(rest.len())].to_string()
    };
    let fd = section("fd");
    assert!(
        fd.contains("Permission denied"),
        "/proc/1/fd must be closed:\n{s}"
    );
    let environ = section("environ");
    assert!(
        environ.contains("Permission denied"),
        "/proc/1/environ:\n{s}"
    );
    let walk = section("walk");
    assert!(
        !walk.contains("home") && !walk.contains("usr"),
        "walked out through init's descriptors:\n{s}"
    );
    // Controls: the profile really grants ptrace and /proc access over
    // the container's processes: a sibling of the command is open to it.
    assert!(s.contains("attach-sibling: ok\n"), "{s}");
    assert!(s.contains("control-environ: 1\n"), "{s}");
    assert!(!s.contains("control-fd: 0\n"), "{s}");
}

/// Run hutch with a terminal as its 0, 1 and 2; returns the exit status,
/// what appeared on the terminal, and whether ECHO is still set.
fn on_terminal(st: &TestStore, profile: &str, script: &str) -> (Option<i32>, String, bool) {
    let (master, slave) = common::pty();
    let echo_before = rustix::termios::tcgetattr(&slave)
        .unwrap()
        .local_modes
        .contains(rustix::termios::LocalModes::ECHO);
    assert!(echo_before, "a new pty echoes");
    let work = st.tmp().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let status = st
        .hutch()
        .current_dir(&work)
        .args(["run", "--rm", "--profile", profile, "--network", "none"])
        .args(["debian:bookworm", "sh", "-c", script])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .status()
        .unwrap();
    let echo_after = rustix::termios::tcgetattr(&slave)
        .unwrap()
        .local_modes
        .contains(rustix::termios::LocalModes::ECHO);
    (status.code(), common::read_pty(&master), echo_after)
}

#[test]
fn untrusted_never_holds_the_terminal_and_settings_come_back() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let script = "exec 3<&1; if stty -echo <&3 2>/dev/null; then echo CHANGED; fi; \
                  stty -a <&3 2>/dev/null | grep -o -- ' -echo ' ; \
                  test -t 1 && echo OUT-TTY || echo OUT-PIPE; echo done-$((6*7))";
    let (code, shown, echo) = on_terminal(&st, "untrusted", script);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("done-42"), "output is relayed: {shown:?}");
    assert!(
        shown.contains("OUT-PIPE") && !shown.contains("CHANGED"),
        "{shown:?}"
    );
    assert!(echo, "the terminal lost ECHO under untrusted");

    // Control: under default the command holds the terminal itself and its
    // change is real while it runs; hutch puts ECHO back at exit.
    let (code, shown, echo) = on_terminal(&st, "default", script);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("OUT-TTY") && shown.contains("CHANGED"),
        "{shown:?}"
    );
    assert!(shown.contains(" -echo "), "stty saw its change: {shown:?}");
    assert!(echo, "hutch did not restore the terminal's settings");
}
