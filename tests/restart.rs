//! Containers that run again: `start` (and `start -a`), `restart`, and
//! `run --restart`, whose keeper starts the command again when it exits;
//! and `attach` to a detached container's terminal (-d -t) or stdin (-d -i).

mod common;

use common::{
    ContainerStore as Store, busybox, describe, eventually, http_get_until, pty, read_pty,
};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// The container's record as `inspect` shows it.
fn inspect(st: &Store, key: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", key])).unwrap();
    v[0].clone()
}

/// Counts its runs in a file of its upper dir, says the count, and
/// exits 3.
const COUNTING: &str = "echo x >> /runs; wc -l < /runs; echo err >&2; exit 3";

#[test]
fn start_runs_an_exited_container_again_on_its_upper_dir() {
    let st = busybox();
    let id = st
        .run_ok([
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "again",
            "busybox",
            "sh",
            "-c",
            COUNTING,
        ])
        .trim()
        .to_string();
    assert_eq!(st.run_ok(["wait", "again"]).trim(), "3");
    assert_eq!(st.run_ok(["logs", "again"]), "1\n");
    let first = inspect(&st, "again");
    // Started again: the same container, its file kept, the log appended.
    assert_eq!(st.run_ok(["start", "again"]).trim(), "again");
    assert_eq!(st.run_ok(["wait", "again"]).trim(), "3");
    assert_eq!(st.run_ok(["logs", "again"]), "1\n2\n");
    let second = inspect(&st, "again");
    assert_eq!(second["Id"], id.as_str());
    assert_ne!(
        second["State"]["StartedAt"], first["State"]["StartedAt"],
        "started time updated"
    );
    assert_eq!(second["State"]["ExitCode"], 3);
    // A running container is left running: its name, no error.
    st.run_ok([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid = inspect(&st, "up")["State"]["ConmonPid"].clone();
    assert_eq!(st.run_ok(["start", "up", "again"]), "up\nagain\n");
    assert_eq!(
        inspect(&st, "up")["State"]["ConmonPid"],
        pid,
        "the same keeper serves it"
    );
    st.run_ok(["wait", "again"]);
}

#[test]
fn start_a_of_a_foreground_container_shows_its_output_and_status() {
    let st = busybox();
    let (_, out) = st.run([
        "run",
        "--network",
        "none",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        COUNTING,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    // -a: this run's output only, stdout and stderr apart, its status.
    let (_, out) = st.run(["start", "-a", "fg"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // A keeper served it: its output is kept from now on.
    assert_eq!(st.run_ok(["logs", "fg"]), "2\n");
    assert!(st.run_ok(["ps", "-a"]).contains("Exited (3)"));
}

#[test]
fn start_binds_the_published_ports_again() {
    let st = busybox();
    let serve = "mkdir -p /www && echo started-$(wc -l < /runs) > /www/index.html \
                 && exec httpd -f -p 8080 -h /www";
    let script = format!("echo x >> /runs; {serve}");
    let out = st
        .hutch()
        .args([
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1::8080",
            "busybox",
            "sh",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let port_of = |stderr: &[u8]| -> u16 {
        let err = String::from_utf8_lossy(stderr);
        err.lines()
            .find_map(|l| l.strip_prefix("hutch: port 8080/tcp is published on 127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port reported: {err}"))
    };
    let port = port_of(&out.stderr);
    http_get_until(port, "/", Duration::from_secs(20), |b| {
        b.contains("started-1")
    })
    .unwrap();
    st.run_ok(["stop", "web"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let (_, out) = st.run(["start", "web"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    let port = port_of(&out.stderr);
    http_get_until(port, "/", Duration::from_secs(20), |b| {
        b.contains("started-2")
    })
    .unwrap();
    let ps = st.run_ok(["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
}

#[test]
fn start_refuses_what_it_cannot_do() {
    let st = busybox();
    let (code, err) = st.run_fail(["start", "no-such"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"no-such\""), "{err}");
    st.run_ok(["run", "--network", "none", "--name", "a", "busybox", "true"]);
    st.run_ok(["run", "--network", "none", "--name", "b", "busybox", "true"]);
    let (code, err) = st.run_fail(["start", "-a", "a", "b"]);
    assert_eq!(code, 125);
    assert!(err.contains("one container"), "{err}");
    // Nothing was started.
    assert_eq!(inspect(&st, "a")["Hutch"]["Detached"], false);
    let (code, err) = st.run_fail(["start"]);
    assert_eq!(code, 125);
    assert!(err.contains("<CONTAINERS>"), "{err}");
    let (code, err) = st.run_fail(["start", "-i", "a"]);
    assert_eq!(code, 125);
    assert!(err.contains("--attach"), "-i needs -a: {err}");
    // One bad name among good ones: the others start, the status says so.
    let (_, out) = st.run(["start", "a", "no-such"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
}

/// `hutch run -d --network none ARGS...`: asserts success.
fn run_d(st: &Store, args: &[&str]) {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    st.run_ok(all);
}

/// The `restart_count` of container `name` in `ps -a --format json`.
fn ps_restarts(st: &Store, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["restart_count"].clone())
        .unwrap_or_default()
}

#[test]
fn restart_on_failure_gives_up_after_its_retries() {
    let st = busybox();
    run_d(
        &st,
        &[
            "--restart",
            "on-failure:2",
            "--name",
            "flaky",
            "busybox",
            "sh",
            "-c",
            COUNTING,
        ],
    );
    // `wait` returns when the keeper gives up: after the first run and
    // two restarts, each on the same upper dir.
    assert_eq!(st.run_ok(["wait", "flaky"]).trim(), "3");
    assert_eq!(st.run_ok(["logs", "flaky"]), "1\n2\n3\n");
    let rec = inspect(&st, "flaky");
    assert_eq!(rec["RestartCount"], 2);
    assert_eq!(
        rec["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
    );
    assert_eq!(ps_restarts(&st, "flaky"), 2);
    // Control: a command that succeeds is not restarted on failure.
    run_d(
        &st,
        &[
            "--restart",
            "on-failure",
            "--name",
            "fine",
            "busybox",
            "sh",
            "-c",
            "echo once",
        ],
    );
    assert_eq!(st.run_ok(["wait", "fine"]).trim(), "0");
    assert_eq!(st.run_ok(["logs", "fine"]), "once\n");
    assert_eq!(inspect(&st, "fine")["RestartCount"], 0);
}

#[test]
fn restart_always_runs_until_stop_and_stop_or_kill_is_final() {
    let st = busybox();
    run_d(
        &st,
        &[
            "--restart",
            "always",
            "--name",
            "loop",
            "busybox",
            "sh",
            "-c",
            "echo x >> /runs; wc -l < /runs",
        ],
    );
    assert!(eventually(30, || st
        .run_ok(["logs", "loop"])
        .lines()
        .count()
        >= 3));
    assert!(
        st.run_ok(["ps"]).contains("loop"),
        "its keeper still serves it"
    );
    assert_eq!(st.run_ok(["stop", "loop"]).trim(), "loop");
    // Stopped for good: its keeper is gone, and every run it made wrote
    // one line (none started after the stop).
    assert!(st.run_ok(["ps", "-q"]).trim().is_empty());
    let rec = inspect(&st, "loop");
    assert_eq!(rec["Hutch"]["StoppedByUser"], true);
    let runs = st.run_ok(["logs", "loop"]).lines().count() as u64;
    assert_eq!(rec["RestartCount"].as_u64().unwrap() + 1, runs);
    // unless-stopped: fails once, then stays up; kill ends it for good.
    run_d(
        &st,
        &[
            "--restart",
            "unless-stopped",
            "--name",
            "second",
            "busybox",
            "sh",
            "-c",
            "echo x >> /runs; n=$(wc -l < /runs); echo $n; [ $n -ge 2 ] && exec sleep 1000; exit 1",
        ],
    );
    assert!(eventually(30, || st.run_ok(["logs", "second"]) == "1\n2\n"));
    assert_eq!(st.run_ok(["kill", "second"]).trim(), "second");
    assert!(st.run_ok(["ps", "-q"]).trim().is_empty());
    let rec = inspect(&st, "second");
    assert_eq!(rec["State"]["ExitCode"], 137);
    assert_eq!(rec["RestartCount"], 1);
    // `start` makes the policy hold again, counting from 0.
    assert_eq!(st.run_ok(["start", "second"]).trim(), "second");
    assert!(eventually(30, || st.run_ok(["logs", "second"]) == "1\n2\n3\n"));
    let rec = inspect(&st, "second");
    assert_eq!(rec["Hutch"]["StoppedByUser"], false);
    assert_eq!(rec["RestartCount"], 0);
}

#[test]
fn restart_stops_and_starts_again() {
    let st = busybox();
    run_d(
        &st,
        &[
            "--name",
            "r",
            "busybox",
            "sh",
            "-c",
            "echo x >> /runs; wc -l < /runs; trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ],
    );
    assert!(eventually(10, || st.run_ok(["logs", "r"]) == "1\n"));
    let before = inspect(&st, "r");
    assert_eq!(st.run_ok(["restart", "-t", "5", "r"]).trim(), "r");
    assert!(eventually(10, || st.run_ok(["logs", "r"]) == "1\n2\n"));
    let after = inspect(&st, "r");
    assert_eq!(after["State"]["Running"], true);
    assert_ne!(
        after["State"]["ConmonPid"], before["State"]["ConmonPid"],
        "a new keeper serves it"
    );
    // An exited container is only started.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--name",
        "done",
        "busybox",
        "true",
    ]);
    assert_eq!(st.run_ok(["restart", "done"]).trim(), "done");
    assert_eq!(st.run_ok(["wait", "done"]).trim(), "0");
    let (code, err) = st.run_fail(["restart", "no-such"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"no-such\""), "{err}");
}

#[test]
fn bad_restart_policies_are_refused_before_anything_is_made() {
    let st = busybox();
    let cases: [(&[&str], &str); 5] = [
        (
            &["-d", "--restart", "sometimes"],
            "use no, on-failure[:MAX_RETRIES], always",
        ),
        (&["-d", "--restart", "always:3"], "use no, on-failure"),
        (&["-d", "--restart", "on-failure:many"], "whole number"),
        (
            &["-d", "--rm", "--restart", "always"],
            "conflicts with --rm",
        ),
        (&["--restart", "on-failure"], "needs -d"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let (code, err) = st.run_fail(&args);
        assert_eq!(code, 125, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(
        st.run_ok(["ps", "-a", "-q"]).trim().is_empty(),
        "nothing created"
    );
    // Control: --restart no is the default and goes with --rm.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--rm",
        "--restart",
        "no",
        "busybox",
        "true",
    ]);
}

/// `hutch ARGS...` with `input` on its stdin (then closed): its output.
fn with_input(st: &Store, args: &[&str], input: &str) -> std::process::Output {
    let mut child = st
        .hutch()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn attach_feeds_the_stdin_of_a_d_i_container_and_start_a_i_too() {
    let st = busybox();
    run_d(
        &st,
        &[
            "-i",
            "--name",
            "cat",
            "busybox",
            "sh",
            "-c",
            "cat; echo done >&2; exit 4",
        ],
    );
    // The end of attach's stdin is the end of the command's.
    let out = with_input(&st, &["attach", "cat"], "hello\n");
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "done\n");
    // The log has it too.
    assert_eq!(st.run_ok(["logs", "cat"]), "hello\n");
    // start -a -i: started and attached at once.
    let out = with_input(&st, &["start", "-a", "-i", "cat"], "again\n");
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "again\n");
    assert_eq!(st.run_ok(["logs", "cat"]), "hello\nagain\n");
}

#[test]
fn attach_relays_a_terminal_and_ctrl_p_ctrl_q_detaches() {
    let st = busybox();
    run_d(&st, &["-t", "--name", "term", "busybox", "sh"]);
    let (master, slave) = pty();
    let size = rustix::termios::Winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size).unwrap();
    let mut child = st
        .hutch()
        .args(["attach", "term"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut shown = String::new();
    // Typed until the shell, attached, answers (the first keys may come
    // before attach has connected).
    assert!(
        eventually(30, || {
            rustix::io::write(&master, b"echo hi-$((40+2))\r").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            shown.push_str(&read_pty(&master));
            shown.contains("hi-42")
        }),
        "{shown}"
    );
    // A terminal: the command's tty is a pty, and its size is attach's.
    rustix::io::write(&master, b"tty; stty size\r").unwrap();
    assert!(
        eventually(30, || {
            shown.push_str(&read_pty(&master));
            shown.contains("/dev/pts/") && shown.contains("33 111")
        }),
        "{shown}"
    );
    rustix::io::write(&master, b"\x10\x11").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "detached: {shown}");
    assert!(
        st.run_ok(["ps"]).contains("term"),
        "it runs on after a detach"
    );
    assert!(st.run_ok(["logs", "term"]).contains("hi-42"));
    drop(slave);
    // Its exit ends an attach with its status.
    let out = with_input(&st, &["attach", "term"], "exit 5\n");
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
}

#[test]
fn attach_refuses_what_it_cannot_do() {
    let st = busybox();
    run_d(&st, &["--name", "plain", "busybox", "sleep", "1000"]);
    let (code, err) = st.run_fail(["attach", "plain"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("without -t or -i") && err.contains("hutch logs -f plain"),
        "{err}"
    );
    let (code, err) = st.run_fail(["start", "-a", "-i", "plain"]);
    assert_eq!(code, 125);
    assert!(err.contains("without -i or -t"), "{err}");
    st.run_ok([
        "run",
        "--network",
        "none",
        "-i",
        "--name",
        "ended",
        "busybox",
        "true",
    ]);
    let (code, err) = st.run_fail(["attach", "ended"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("is not running") && err.contains("start -a -i ended"),
        "{err}"
    );
    let (code, err) = st.run_fail(["attach", "no-such"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"no-such\""), "{err}");
    let (code, err) = st.run_fail(["attach", "--detach-keys", "ctrl-1", "ended"]);
    assert_eq!(code, 125);
    assert!(err.contains("--detach-keys"), "{err}");
}
