//! `hutch exec`: a command in a running container's namespaces, with its
//! confinement (the escape checks through exec are in tests/escape.rs),
//! its exit statuses, flags, `--detach`, and what happens when the
//! container ends.

mod common;

use common::{ContainerStore as Store, busybox, describe, eventually};
use std::process::Stdio;

/// `run -d --name NAME [args] busybox sh -c SCRIPT`.
fn start(st: &Store, name: &str, args: &[&str], script: &str) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "sh", "-c", script]);
    st.run_ok(all);
}

/// `hutch exec ARGS`: (exit code, stdout, stderr).
fn exec(st: &Store, args: &[&str]) -> (i32, String, String) {
    let out = st.hutch().arg("exec").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NAMESPACES: &str = "user mnt pid net uts ipc cgroup";

#[test]
fn exec_joins_every_namespace_and_sees_the_containers_files() {
    let st = busybox();
    start(
        &st,
        "svc",
        &[],
        "echo made-inside > /tmp/mark; exec sleep 100000",
    );
    // run -d returns once the command started, maybe before it wrote.
    assert!(eventually(20, || exec(&st, &["svc", "cat", "/tmp/mark"]).0 == 0));
    // The container's command is PID 2 (init is 1): every namespace of the
    // exec'd process is its.
    let script = format!(
        "for n in {NAMESPACES}; do [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/2/ns/$n)\" ] \
         && echo same-$n || echo other-$n; done; cat /tmp/mark; hostname; cat /proc/1/comm; \
         [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/2/cgroup)\" ] && echo same-cgroup"
    );
    let (code, out, err) = exec(&st, &["svc", "sh", "-c", &script]);
    assert_eq!(code, 0, "{err}");
    let mut want: Vec<String> = NAMESPACES.split(' ').map(|n| format!("same-{n}")).collect();
    want.extend(
        ["made-inside", "svc", "hutch-init", "same-cgroup"]
            .iter()
            .map(|s| s.to_string()),
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{err}");
    // Control: a second container is in namespaces of its own.
    start(&st, "other", &[], "exec sleep 100000");
    let (code, out, _) = exec(
        &st,
        &[
            "other",
            "sh",
            "-c",
            "readlink /proc/self/ns/mnt; cat /tmp/mark 2>/dev/null || echo no-mark",
        ],
    );
    assert_eq!(code, 0);
    let (_, svc_mnt, _) = exec(&st, &["svc", "readlink", "/proc/self/ns/mnt"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], svc_mnt.trim(), "each container has its own");
    assert_eq!(lines[1], "no-mark");
}

#[test]
fn exec_gets_the_containers_confinement() {
    let st = busybox();
    start(&st, "c", &[], "exec sleep 100000");
    let fields = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/$1/status | tr -d '\\t'; \
                  cat /proc/$1/limits | grep -E 'open files|processes|core file'";
    let (code, mine, err) = exec(&st, &["c", "sh", "-c", fields, "-", "self"]);
    assert_eq!(code, 0, "{err}");
    let (_, main, _) = exec(&st, &["c", "sh", "-c", fields, "-", "2"]);
    assert!(
        mine.contains("NoNewPrivs:1") && mine.contains("Seccomp:2"),
        "{mine}"
    );
    assert_eq!(mine, main, "exec'd process and the container's command");
}

#[test]
fn exit_statuses_are_those_of_run() {
    let st = busybox();
    start(&st, "c", &[], "exec sleep 100000");
    assert_eq!(exec(&st, &["c", "sh", "-c", "exit 7"]).0, 7);
    let (code, _, err) = exec(&st, &["c", "no-such-command"]);
    assert_eq!(code, 127);
    assert!(err.contains("no-such-command: command not found"), "{err}");
    let (code, _, err) = exec(&st, &["c", "/etc/passwd"]);
    assert_eq!(code, 126);
    assert!(err.contains("cannot execute"), "{err}");
    let (code, _, _) = exec(&st, &["c", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code, 128 + 15);
    let (code, _, err) = exec(&st, &["nothing-here", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"nothing-here\""), "{err}");
    let (code, _, err) = exec(&st, &["-w", "tmp", "c", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("absolute path"), "{err}");
    let (code, _, err) = exec(&st, &["-u", "nobody-here", "c", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("no user \"nobody-here\""), "{err}");
    // A stopped container: 125, and how to start it.
    st.run_ok(["stop", "-t", "1", "c"]);
    let (code, _, err) = exec(&st, &["c", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("container c is not running") && err.contains("hutch start c"),
        "{err}"
    );
    // Its join socket went with it.
    let ps: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    let dir = st
        .root()
        .join("containers")
        .join(ps[0]["id"].as_str().unwrap());
    assert!(dir.is_dir(), "{}", dir.display());
    assert!(!dir.join("join.sock").exists());
}

#[test]
fn user_workdir_env_and_stdin() {
    let st = busybox();
    start(&st, "c", &["-e", "FROM_RUN=1"], "exec sleep 100000");
    let (code, out, err) = exec(
        &st,
        &[
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            "c",
            "sh",
            "-c",
            "id -u; id -g; pwd; echo $FOO $FROM_RUN",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000\n1000\n/tmp\nbar 1\n");
    // A name from the container's /etc/passwd, with a change made inside.
    exec(
        &st,
        &[
            "c",
            "sh",
            "-c",
            "echo 'svc:x:4321:4321::/:/bin/sh' >> /etc/passwd",
        ],
    );
    let (code, out, err) = exec(&st, &["-u", "svc", "c", "id", "-u"]);
    assert_eq!((code, out.as_str()), (0, "4321\n"), "{err}");
    // -i passes stdin; without it the command reads nothing.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    for (flag, want) in [(true, bytes.clone()), (false, Vec::new())] {
        let mut cmd = st.hutch();
        cmd.arg("exec");
        if flag {
            cmd.arg("-i");
        }
        let mut child = cmd
            .args(["c", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = bytes.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(out.stdout == want, "-i {flag}: {} bytes", out.stdout.len());
    }
}

#[test]
fn detach_returns_at_once_and_the_command_runs_on_under_init() {
    let st = busybox();
    start(&st, "c", &[], "exec sleep 100000");
    let (code, out, err) = exec(
        &st,
        &["-d", "c", "sh", "-c", "sleep 1; echo $PPID > /tmp/ppid"],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    // Not there yet: exec -d did not wait.
    let (_, now, _) = exec(
        &st,
        &["c", "sh", "-c", "cat /tmp/ppid 2>/dev/null || echo none"],
    );
    assert_eq!(now, "none\n");
    assert!(eventually(20, || {
        exec(&st, &["c", "cat", "/tmp/ppid"]).1 == "1\n"
    }));
    // A command that cannot run is reported at once, with run's status.
    let (code, _, err) = exec(&st, &["-d", "c", "no-such-command"]);
    assert_eq!(code, 127);
    assert!(err.contains("command not found"), "{err}");
    // Everything that ended was reaped: no zombie in the container.
    let zombies = "for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s; done 2>/dev/null | grep -c Z";
    assert!(
        eventually(20, || exec(&st, &["c", "sh", "-c", zombies]).1 == "0\n"),
        "{}",
        exec(&st, &["c", "ps"]).1
    );
    let (code, _, err) = exec(&st, &["-d", "-t", "c", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("drop -t"), "{err}");
}

#[test]
fn two_execs_at_once_and_a_foreground_container() {
    let st = busybox();
    // A foreground `hutch run` serves its container too.
    let mut fg = st
        .hutch()
        .args(["run", "--name", "fg", "--network", "none", "busybox"])
        .args(["sh", "-c", "echo fg > /tmp/who; exec sleep 100000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(30, || exec(&st, &["fg", "cat", "/tmp/who"]).1 == "fg\n"));
    let children: Vec<_> = (0..2)
        .map(|i| {
            st.hutch()
                .args(["exec", "fg", "sh", "-c"])
                .arg(format!("sleep 1; echo exec-{i}"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("exec-{i}\n"));
    }
    st.run_ok(["stop", "-t", "1", "fg"]);
    let _ = fg.wait();
}

#[test]
fn an_exec_ends_with_its_container() {
    let st = busybox();
    start(&st, "c", &[], "exec sleep 100000");
    let mut long = st
        .hutch()
        .args(["exec", "c", "sleep", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Running, in the container.
    assert!(eventually(20, || {
        exec(&st, &["c", "sh", "-c", "ps | grep -c '[s]leep 100000'"]).1 == "2\n"
    }));
    st.run_ok(["stop", "-t", "1", "c"]);
    let mut status = None;
    assert!(
        eventually(20, || {
            status = long.try_wait().unwrap();
            status.is_some()
        }),
        "hutch exec still runs after its container stopped"
    );
    assert_ne!(status.unwrap().code(), Some(0));
}

#[test]
fn a_terminal_with_t_and_a_host_network_container() {
    let st = busybox();
    start(&st, "c", &["--network", "host"], "exec sleep 100000");
    let (master, slave) = common::pty();
    let status = st
        .hutch()
        .args(["exec", "-t", "c", "sh", "-c", "tty; echo $TERM"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .status()
        .unwrap();
    let shown = common::read_pty(&master).replace('\r', "");
    drop(slave);
    assert_eq!(status.code(), Some(0), "{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{shown:?}"
    );
    assert_eq!(lines.get(1), Some(&"xterm"), "{shown:?}");
    // -t needs a terminal on stdin, as with run.
    let (code, _, err) = exec(&st, &["-t", "c", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("not a TTY"), "{err}");
    // --network host: the host's network namespace is not joined (it is
    // not the container's to give), everything else is.
    let (code, out, err) = exec(
        &st,
        &[
            "c",
            "sh",
            "-c",
            "readlink /proc/self/ns/net; readlink /proc/2/ns/net",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0], l[1]);
    assert_eq!(
        l[0],
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy()
    );
}
