//! Escape attempts under the `untrusted` profile: each must fail, and each
//! check also proves it could have succeeded (a control run or a host-side
//! fact), so a broken test cannot pass by accident.
//!
//! Every check runs twice: in a new container (`hutch run`), and through
//! `hutch exec` into a container started with `run -d --profile
//! untrusted`, whose commands must get exactly the same confinement.
//!
//! Raw syscalls come from perl's `syscall` in the Debian fixture (x86_64
//! numbers; other architectures skip those checks with a message).

mod common;

use common::{TestStore, describe, fixture};
use std::path::PathBuf;
use std::process::Output;

/// How the untrusted commands of a check are run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// `hutch run --rm --profile untrusted ...`
    Run,
    /// `hutch exec` into a running `--profile untrusted` container.
    Exec,
}

struct Sandbox {
    st: TestStore,
    /// The current directory of hutch (the untrusted profile mounts it).
    work: PathBuf,
    via: Via,
}

/// The running untrusted container of [`Via::Exec`].
const TARGET: &str = "target";

fn sandbox(via: Via) -> Sandbox {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let work = st.tmp().join("work");
    std::fs::create_dir(&work).unwrap();
    if via == Via::Exec {
        let out = st
            .hutch()
            .current_dir(&work)
            .args(["run", "-d", "--profile", "untrusted", "--name", TARGET])
            .args(["debian:bookworm", "sleep", "100000"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    Sandbox { st, work, via }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.via == Via::Exec {
            let _ = self.st.run(["rm", "-f", TARGET]);
        }
    }
}

impl Sandbox {
    /// `hutch run --rm --profile PROFILE [extra...] debian:bookworm sh -c SCRIPT`.
    fn run(&self, profile: &str, extra: &[&str], script: &str) -> Output {
        let out = self
            .st
            .hutch()
            .current_dir(&self.work)
            .args(["run", "--rm", "--profile", profile])
            .args(extra)
            .args(["debian:bookworm", "sh", "-c", script])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "the script itself must run ({profile})\n{}",
            describe(&out)
        );
        out
    }

    /// SCRIPT under the untrusted profile, as this sandbox runs it;
    /// `extra`: `-u USER` and the like, which run and exec share.
    fn untrusted_with(&self, extra: &[&str], script: &str) -> Output {
        match self.via {
            Via::Run => self.run("untrusted", extra, script),
            Via::Exec => {
                let out = self
                    .st
                    .hutch()
                    .current_dir(&self.work)
                    .arg("exec")
                    .args(extra)
                    .args([TARGET, "sh", "-c", script])
                    .output()
                    .unwrap();
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "the script itself must run (exec)\n{}",
                    describe(&out)
                );
                out
            }
        }
    }

    fn untrusted(&self, script: &str) -> String {
        String::from_utf8_lossy(&self.untrusted_with(&[], script).stdout).into_owned()
    }

    /// The hutch arguments that run ARGS untrusted with a terminal.
    fn untrusted_tty_args(&self) -> Vec<&'static str> {
        match self.via {
            Via::Run => vec![
                "run",
                "--rm",
                "-t",
                "--profile",
                "untrusted",
                "debian:bookworm",
            ],
            Via::Exec => vec!["exec", "-t", TARGET],
        }
    }
}

/// `#[test]`s for a check, `name` through run and `name_through_exec`.
macro_rules! both_ways {
    ($check:ident, $exec:ident) => {
        #[test]
        fn $check() {
            checks::$check(Via::Run);
        }

        #[test]
        fn $exec() {
            checks::$check(Via::Exec);
        }
    };
}

both_ways!(
    host_files_are_out_of_reach,
    host_files_are_out_of_reach_through_exec
);
both_ways!(no_network, no_network_through_exec);
both_ways!(
    no_mounts_no_namespaces_no_kernel_interfaces,
    no_mounts_no_namespaces_no_kernel_interfaces_through_exec
);
both_ways!(
    host_processes_are_invisible_and_untouchable,
    host_processes_are_invisible_and_untouchable_through_exec
);
both_ways!(
    proc_sys_and_setuid_are_locked,
    proc_sys_and_setuid_are_locked_through_exec
);
both_ways!(
    tiocsti_injection_is_refused,
    tiocsti_injection_is_refused_through_exec
);

/// perl one-liner printing `syscall(NR, ARGS)`'s result and errno number
/// (`args`: a perl list starting with a comma; copied into an array, as
/// perl passes strings to syscall only from writable variables).
fn sys(nr: u32, args: &str) -> String {
    let args = args.trim_start_matches(',');
    format!(
        "perl -e 'my @a = ({args}); $r = syscall({nr}, @a); print $r < 0 ? \"fail \" . ($! + 0) : \"ok\", \"\\n\"'"
    )
}

fn x86_64() -> bool {
    if cfg!(target_arch = "x86_64") {
        true
    } else {
        eprintln!("raw syscall checks use x86_64 numbers: skipped on this architecture");
        false
    }
}

mod checks {
    use super::*;

    pub fn host_files_are_out_of_reach(via: Via) {
        let sb = sandbox(via);
        let secret = sb.st.home().join("secret.txt");
        std::fs::write(&secret, "host secret").unwrap();
        let outside = sb.st.tmp().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let script = format!(
            "cat {s} 2>/dev/null || echo no-secret; \
             touch {o}/pwned 2>/dev/null || echo no-write; \
             echo inside > ./result && echo work-writable; \
             touch /usr/bin/pwned 2>/dev/null || echo root-ro",
            s = secret.display(),
            o = outside.display()
        );
        assert_eq!(
            sb.untrusted(&script),
            "no-secret\nno-write\nwork-writable\nroot-ro\n"
        );
        assert!(!outside.join("pwned").exists());
        assert_eq!(
            std::fs::read_to_string(sb.work.join("result")).unwrap(),
            "inside\n",
            "the named work directory is the one way out"
        );
        // Even on the host's own root, the home directory is hidden.
        let out = sb.st.run_ok([
            "run",
            "--rm",
            "--profile",
            "untrusted",
            "host",
            "sh",
            "-c",
            &format!("cat {} 2>/dev/null || echo hidden", secret.display()),
        ]);
        assert_eq!(out, "hidden\n");
    }

    pub fn no_network(via: Via) {
        let sb = sandbox(via);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!(
            "cat /sys/class/net/*/operstate | wc -l; ls /sys/class/net; \
             (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo connected || echo refused; \
             perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(\"127.0.0.1:{port}\") ? \"reached\\n\" : \"unreachable\\n\"'"
        );
        let out = sb.untrusted(&script);
        assert!(out.starts_with("1\nlo\n"), "only loopback: {out}");
        assert!(out.ends_with("unreachable\n"), "{out}");
        // Control: the host network (--network host) reaches the listener.
        let out = sb.run(
            "default",
            &["--network", "host"],
            &format!(
                "perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(\"127.0.0.1:{port}\") ? \"reached\\n\" : \"unreachable\\n\"'"
            ),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "reached\n");
    }

    pub fn no_mounts_no_namespaces_no_kernel_interfaces(via: Via) {
        if !x86_64() {
            return;
        }
        let sb = sandbox(via);
        // mount(2)=165, unshare(CLONE_NEWUSER)=272, keyctl=250, add_key=248,
        // bpf=321, perf_event_open=298, init_module=175, finit_module=313,
        // ptrace(PTRACE_TRACEME)=101, sethostname=170, setns=308.
        let checks = [
            ("mount", sys(165, ", \"none\", \"/mnt\", \"tmpfs\", 0, 0")),
            ("unshare-user", sys(272, ", 0x10000000")),
            ("keyctl", sys(250, ", 0, 0, 0, 0")),
            ("add_key", sys(248, ", \"user\", \"k\", \"v\", 1, -4")),
            ("bpf", sys(321, ", 0, 0, 0")),
            ("perf_event_open", sys(298, ", 0, 0, -1, -1, 0")),
            ("init_module", sys(175, ", 0, 0, \"\"")),
            ("finit_module", sys(313, ", 0, \"\", 0")),
            ("ptrace", sys(101, ", 0, 0, 0, 0")),
            ("sethostname", sys(170, ", \"evil\", 4")),
        ];
        let script: String = checks
            .iter()
            .map(|(name, c)| format!("printf '{name} '; {c}; "))
            .collect();
        let out = sb.untrusted(&script);
        for (name, _) in &checks {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no result for {name}: {out}"));
            assert!(
                line.contains("fail"),
                "{name} must fail under untrusted: {line}"
            );
        }
        // Control: with a permissive profile (no seccomp filter, CAP_SYS_ADMIN
        // kept), root of the container may mount a tmpfs and set its own
        // hostname, both inside its namespaces: the calls above are right and
        // fail because of the profile.
        let dir = sb.st.home().join(".config/hutch/profiles");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("permissive.toml"),
            "extends = \"default\"\n[security]\nseccomp = \"unconfined\"\ncapabilities = [\"CAP_SYS_ADMIN\"]\n",
        )
        .unwrap();
        let out = sb.run(
            "permissive",
            &[],
            &format!(
                "printf 'mount '; {}; printf 'sethostname '; {}",
                sys(165, ", \"none\", \"/mnt\", \"tmpfs\", 0, 0"),
                sys(170, ", \"evil\", 4")
            ),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "mount ok\nsethostname ok\n",
            "the control runs succeed"
        );
        let host = rustix::system::uname();
        assert_ne!(
            host.nodename().to_bytes(),
            b"evil",
            "the host's hostname is untouched"
        );
    }

    pub fn host_processes_are_invisible_and_untouchable(via: Via) {
        let sb = sandbox(via);
        let me = std::process::id();
        let out = sb.untrusted(&format!(
            "ls /proc | grep -c '^[0-9]'; test -e /proc/{me} && echo sees-host || echo no-host-pids; \
             kill -0 {me} 2>/dev/null && echo signalled || echo no-signal; \
             grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'; \
             grep CapEff /proc/self/status | tr -d '\\t'"
        ));
        let lines: Vec<&str> = out.lines().collect();
        // sh, ls, grep and init; through exec also the container's own
        // command.
        let most = if via == Via::Exec { 5 } else { 4 };
        assert!(lines[0].parse::<u32>().unwrap() <= most, "{out}");
        assert_eq!(
            &lines[1..],
            [
                "no-host-pids",
                "no-signal",
                "NoNewPrivs:1",
                "Seccomp:2",
                "CapEff:0000000000000000"
            ],
            "{out}"
        );
    }

    pub fn proc_sys_and_setuid_are_locked(via: Via) {
        let sb = sandbox(via);
        let out = sb.untrusted(
            "echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo wrote-sysrq || echo proc-sys-ro; \
             echo b > /proc/sysrq-trigger 2>/dev/null && echo triggered || echo trigger-ro",
        );
        assert_eq!(out, "proc-sys-ro\ntrigger-ro\n");
        // A setuid-root binary run by a non-root user gains nothing. The
        // default profile (as container root) makes a setuid copy of perl in
        // the work directory (a host mount without nosuid); untrusted runs it
        // as uid 1000: with no_new_privs the effective uid stays 1000.
        let w = sb.work.to_str().unwrap().to_string();
        sb.run(
            "default",
            &["-v", &format!("{w}:{w}"), "-w", &w],
            "cp /usr/bin/perl ./sperl && chmod 4755 ./sperl",
        );
        let meta = std::fs::metadata(sb.work.join("sperl")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o4000,
            0o4000,
            "the setuid bit is set"
        );
        let out = sb.untrusted_with(&["-u", "1000:1000"], "./sperl -e 'print \"$< $>\\n\"'");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1000 1000\n");
    }

    /// TIOCSTI (pushing characters into the terminal's input) from a `-t`
    /// session: refused, while an ordinary terminal ioctl works.
    pub fn tiocsti_injection_is_refused(via: Via) {
        let sb = sandbox(via);
        let driver = r#"
import os, pty, sys, select, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
end = time.time() + 30
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            b = os.read(fd, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;
        let mut cmd = std::process::Command::new("python3");
        cmd.current_dir(&sb.work)
            .arg("-c")
            .arg(driver)
            .arg(common::hutch_bin());
        for (k, v) in sb.st.hutch().get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        // TIOCSTI = 0x5412, TIOCGWINSZ = 0x5413.
        cmd.args(sb.untrusted_tty_args());
        cmd.args([
            "perl",
            "-e",
            "my $c = \"x\"; print ioctl(STDIN, 0x5412, $c) ? \"injected\\n\" : \"sti-refused $!\\n\"; \
             my $ws = \"\\0\" x 8; print ioctl(STDIN, 0x5413, $ws) ? \"winsz-ok\\n\" : \"winsz-fail\\n\";",
        ]);
        let out = cmd.output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(t.contains("sti-refused"), "{}", describe(&out));
        assert!(t.contains("winsz-ok"), "{}", describe(&out));
    }
}
