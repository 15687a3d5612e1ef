//! Detached containers (`run -d`) served by a keeper process, with no
//! daemon: `ps`, `logs`, `stop`, `kill`, `wait`, `rm -f`, published
//! ports, and what is left after a keeper is killed.

mod common;

use common::{
    ContainerStore as Store, busybox, describe, eventually, http_get_until, processes_with,
};
use std::time::{Duration, Instant};

/// `hutch run -d ARGS...`: asserts success and a full ID on stdout.
fn start(st: &Store, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    let id = st.run_ok(all).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

/// The container's record as `inspect` shows it.
fn inspect(st: &Store, key: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", key])).unwrap();
    v[0].clone()
}

#[test]
fn run_d_returns_while_the_command_runs_and_logs_keep_its_output() {
    let st = busybox();
    let id = start(
        &st,
        &[
            "--name",
            "svc",
            "busybox",
            "sh",
            "-c",
            "echo err-1 >&2; sleep 0.3; echo out-1; printf partial; sleep 1000",
        ],
    );
    // run -d returned, the container runs on.
    let ps = st.run_ok(["ps"]);
    let line = ps.lines().find(|l| l.contains("svc")).unwrap_or("");
    assert!(line.contains("Up "), "{ps}");
    let ps_json: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "--format", "json"])).unwrap();
    assert_eq!(ps_json[0]["id"], id.as_str());
    assert_eq!(ps_json[0]["state"], "running");
    // stdout and stderr are kept apart.
    assert!(eventually(10, || {
        let (_, out) = st.run(["logs", "svc"]);
        String::from_utf8_lossy(&out.stdout) == "out-1\npartial"
            && String::from_utf8_lossy(&out.stderr) == "err-1\n"
    }));
    // -t puts the time first, --tail keeps the last lines.
    let stamped = st.run_ok(["logs", "-t", "svc"]);
    let first = stamped.lines().next().unwrap();
    let (time, rest) = first.split_once(' ').unwrap();
    assert!(time.contains('T') && time.ends_with('Z'), "{first}");
    assert_eq!(rest, "out-1");
    assert_eq!(st.run_ok(["logs", "--tail", "1", "svc"]), "partial");
    assert_eq!(
        st.run_ok(["logs", "--since", "1h", &id[..12]]),
        "out-1\npartial"
    );
    assert_eq!(
        st.run_ok(["logs", "--since", "2099-01-01T00:00:00Z", "svc"]),
        ""
    );
    // Control: a foreground container has no log.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--name",
        "fg",
        "busybox",
        "true",
    ]);
    let (code, err) = st.run_fail(["logs", "fg"]);
    assert_eq!(code, 125);
    assert!(err.contains("not started with -d"), "{err}");
    st.run_ok(["rm", "-f", "svc"]);
    assert!(!st.run_ok(["ps", "-a"]).contains("svc"));
}

#[test]
fn logs_are_binary_safe_and_follow_ends_with_the_container() {
    let st = busybox();
    // Every byte value, twice, and no newline at the end.
    start(
        &st,
        &[
            "--name",
            "bin",
            "busybox",
            "sh",
            "-c",
            "sleep 1; i=0; while [ $i -lt 256 ]; do printf \"$(printf '\\\\%03o' $i)\"; i=$((i+1)); done; \
             i=0; while [ $i -lt 256 ]; do printf \"$(printf '\\\\%03o' $i)\"; i=$((i+1)); done",
        ],
    );
    // -f started before the output: it prints everything, then returns
    // when the container ends.
    let (_, out) = st.run(["logs", "-f", "bin"]);
    assert!(out.status.success(), "{}", describe(&out));
    let want: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    assert_eq!(out.stdout, want);
    assert_eq!(st.run_ok(["wait", "bin"]).trim(), "0");
    let (_, again) = st.run(["logs", "bin"]);
    assert_eq!(
        again.stdout, want,
        "the same bytes after the container ended"
    );
}

#[test]
fn stop_sends_term_then_kill_and_records_the_exit() {
    let st = busybox();
    start(
        &st,
        &[
            "--name",
            "polite",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.1; done",
        ],
    );
    start(
        &st,
        &[
            "--name",
            "stubborn",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; echo up; while :; do sleep 0.1; done",
        ],
    );
    for n in ["polite", "stubborn"] {
        assert!(eventually(10, || st.run_ok(["logs", n]) == "up\n"), "{n}");
    }
    let t0 = Instant::now();
    assert_eq!(st.run_ok(["stop", "polite"]).trim(), "polite");
    assert!(t0.elapsed() < Duration::from_secs(8), "no need for SIGKILL");
    assert_eq!(st.run_ok(["logs", "polite"]), "up\ngot TERM\n");
    assert_eq!(inspect(&st, "polite")["State"]["ExitCode"], 0);
    // Ignores TERM: killed after -t seconds, recorded as 137.
    assert_eq!(
        st.run_ok(["stop", "-t", "1", "stubborn"]).trim(),
        "stubborn"
    );
    assert_eq!(inspect(&st, "stubborn")["State"]["ExitCode"], 137);
    let ps = st.run_ok(["ps", "-a"]);
    assert!(
        ps.contains("Exited (0)") && ps.contains("Exited (137)"),
        "{ps}"
    );
    assert!(st.run_ok(["ps", "-q"]).trim().is_empty(), "{ps}");
    // Stopping a stopped container is no error, as in Podman.
    assert_eq!(st.run_ok(["stop", "polite"]).trim(), "polite");
    let (code, err) = st.run_fail(["stop", "no-such"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"no-such\""), "{err}");
}

#[test]
fn kill_passes_signals_and_wait_gives_the_status() {
    let st = busybox();
    start(
        &st,
        &[
            "--name",
            "sig",
            "busybox",
            "sh",
            "-c",
            "trap 'echo usr1' USR1; trap 'exit 3' HUP; echo up; while :; do sleep 0.1; done",
        ],
    );
    assert!(eventually(10, || st.run_ok(["logs", "sig"]) == "up\n"));
    st.run_ok(["kill", "-s", "USR1", "sig"]);
    assert!(eventually(10, || st.run_ok(["logs", "sig"]) == "up\nusr1\n"));
    let (code, err) = st.run_fail(["kill", "-s", "ALRM", "sig"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown signal"), "{err}");
    st.run_ok(["kill", "-s", "HUP", "sig"]);
    assert_eq!(st.run_ok(["wait", "sig"]).trim(), "3");
    let (code, err) = st.run_fail(["kill", "sig"]);
    assert_eq!(code, 125);
    assert!(err.contains("is not running"), "{err}");
    // --rm -d: gone once it ends.
    start(&st, &["--rm", "--name", "brief", "busybox", "true"]);
    assert!(eventually(10, || !st
        .run_ok(["ps", "-a"])
        .contains("brief")));
}

#[test]
fn run_d_of_a_command_that_cannot_run_fails_with_its_status_as_podman() {
    let st = busybox();
    // Not found: run -d itself exits 127 and says why; the container is
    // recorded as exited (127) by the time it returns.
    let (code, err) = st.run_fail([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "typo",
        "busybox",
        "no-such-command",
    ]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("container typo: no-such-command: command not found"),
        "{err}"
    );
    assert_eq!(st.run_ok(["wait", "typo"]).trim(), "127");
    assert!(st.run_ok(["ps", "-a"]).contains("Exited (127)"));
    assert!(!st.run_ok(["ps"]).contains("typo"), "never left running");
    let (_, out) = st.run(["logs", "typo"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("no-such-command: command not found"), "{log}");
    // Not executable: 126. With --rm nothing is left.
    let (code, err) = st.run_fail([
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "--name",
        "noexec",
        "busybox",
        "/etc/passwd",
    ]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("/etc/passwd: cannot execute"), "{err}");
    assert!(!st.run_ok(["ps", "-a"]).contains("noexec"));
    // Control: a command that runs and fails at once is no error of run
    // -d (its status is for `wait`), and a restart policy does not apply
    // to a command that never ran.
    start(&st, &["--name", "fails", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(st.run_ok(["wait", "fails"]).trim(), "7");
    let (code, _) = st.run_fail([
        "run",
        "-d",
        "--restart",
        "always",
        "--network",
        "none",
        "--name",
        "never",
        "busybox",
        "no-such-command",
    ]);
    assert_eq!(code, 127);
    assert_eq!(st.run_ok(["wait", "never"]).trim(), "127");
    assert!(!st.run_ok(["ps"]).contains("never"), "not restarted");
}

#[test]
fn published_ports_are_served_by_the_keeper_until_stop() {
    let st = busybox();
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
            "mkdir -p /www && echo detached-ok > /www/index.html && exec httpd -f -p 8080 -h /www",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // "hutch: port 8080/tcp is published on 127.0.0.1:PORT"
    let port: u16 = err
        .lines()
        .find_map(|l| l.strip_prefix("hutch: port 8080/tcp is published on 127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port reported: {err}"));
    let body = http_get_until(port, "/", Duration::from_secs(20), |b| {
        b.contains("detached-ok")
    })
    .unwrap();
    assert!(body.contains("200"), "{body}");
    let ps = st.run_ok(["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
    st.run_ok(["stop", "web"]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed once the container stopped"
    );
}

#[test]
fn a_killed_keeper_leaves_nothing_and_shows_as_killed() {
    let st = busybox();
    let marker = format!("sleep 5151{}", std::process::id() % 1000);
    start(&st, &["--name", "orphan", "busybox", "sh", "-c", &marker]);
    assert!(eventually(10, || !processes_with(&marker).is_empty()));
    let keeper = inspect(&st, "orphan")["State"]["ConmonPid"]
        .as_i64()
        .unwrap() as i32;
    assert!(keeper > 0);
    // The keeper is in its own session, not in ours.
    let stat = std::fs::read_to_string(format!("/proc/{keeper}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], keeper.to_string(), "session id = keeper: {stat}");
    let _ = std::process::Command::new("kill")
        .args(["-9", &keeper.to_string()])
        .status();
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "the container's processes died with their keeper"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("fuse.hutch"),
        "nothing mounted on the host"
    );
    // An exiting process has left /proc's cmdline before it closes its
    // descriptors (the running lock among them): wait for that too.
    assert!(
        eventually(10, || {
            let ps = st.run_ok(["ps", "-a"]);
            ps.contains("orphan") && ps.contains("Killed")
        }),
        "{}",
        st.run_ok(["ps", "-a"])
    );
    assert!(!st.run_ok(["ps"]).contains("orphan"), "never shown running");
    st.run_ok(["rm", "orphan"]);
}

#[test]
fn twenty_detached_containers_then_all_stopped_at_once() {
    let st = busybox();
    let names: Vec<String> = (0..20).map(|i| format!("many{i}")).collect();
    // All started at once: twenty `run -d` racing for the store.
    std::thread::scope(|s| {
        for n in &names {
            let st = &st;
            s.spawn(move || start(st, &["--name", n, "busybox", "sleep", "1000"]));
        }
    });
    let running = st.run_ok(["ps", "-q"]);
    assert_eq!(running.lines().count(), 20, "{running}");
    let mut args = vec!["stop", "-t", "5"];
    args.extend(names.iter().map(String::as_str));
    let stopped = st.run_ok(args);
    assert_eq!(stopped.lines().count(), 20, "{stopped}");
    assert!(st.run_ok(["ps", "-q"]).trim().is_empty());
    // sleep as PID 1's child dies of SIGTERM: 143, without SIGKILL.
    let all: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    for c in all.as_array().unwrap() {
        assert_eq!(c["exit_code"], 143, "{c}");
    }
}

#[test]
fn rename_of_a_running_container_lasts_past_its_exit_and_ps_filters() {
    let st = busybox();
    start(
        &st,
        &["--name", "before", "busybox", "sh", "-c", "sleep 1000"],
    );
    start(&st, &["--name", "other", "busybox", "true"]);
    assert_eq!(st.run_ok(["wait", "other"]).trim(), "0");
    st.run_ok(["rename", "before", "after"]);
    let (code, err) = st.run_fail(["rename", "after", "other"]);
    assert_eq!(code, 125);
    assert!(err.contains("in use"), "{err}");
    let (code, err) = st.run_fail(["rename", "after", "bad name"]);
    assert_eq!(code, 125);
    assert!(err.contains("--name"), "{err}");
    // The keeper records the exit under the new name (it does not write
    // back the record it started with).
    st.run_ok(["stop", "-t", "5", "after"]);
    let names = |filter: &[&str]| {
        let mut args = vec!["ps", "-a", "--format", "json"];
        for f in filter {
            args.extend(["--filter", f]);
        }
        let v: serde_json::Value = serde_json::from_str(&st.run_ok(args)).unwrap();
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&[]), ["after", "other"]);
    assert_eq!(names(&["name=aft"]), ["after"]);
    assert_eq!(names(&["name=aft", "name=oth"]), ["after", "other"]);
    assert_eq!(
        names(&["status=exited", "ancestor=busybox"]),
        ["after", "other"]
    );
    assert!(names(&["status=running"]).is_empty());
    assert!(names(&["ancestor=debian"]).is_empty());
    let (code, err) = st.run_fail(["ps", "--filter", "colour=red"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown key"), "{err}");
}

#[test]
fn stop_sends_the_flags_or_the_images_stop_signal_and_waits_its_stop_timeout() {
    let st = busybox();
    let script = "trap 'echo got USR1; exit 3' USR1; trap 'echo got TERM; exit 4' TERM; \
                  echo up; while :; do sleep 0.1; done";
    // An image whose config says STOPSIGNAL SIGUSR1.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--name",
        "base",
        "busybox",
        "true",
    ]);
    st.run_ok(["commit", "-c", "STOPSIGNAL SIGUSR1", "base", "usr1img"]);
    start(
        &st,
        &[
            "--name",
            "flag",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    start(&st, &["--name", "image", "usr1img", "sh", "-c", script]);
    // Controls: busybox sets none (TERM); the flag wins over the image.
    start(&st, &["--name", "plain", "busybox", "sh", "-c", script]);
    start(
        &st,
        &[
            "--name",
            "override",
            "--stop-signal",
            "TERM",
            "usr1img",
            "sh",
            "-c",
            script,
        ],
    );
    let names = ["flag", "image", "plain", "override"];
    for n in names {
        assert!(eventually(10, || st.run_ok(["logs", n]) == "up\n"), "{n}");
    }
    let mut args = vec!["stop"];
    args.extend(names);
    assert_eq!(st.run_ok(args).lines().count(), 4);
    for (n, said, code) in [
        ("flag", "got USR1", "3"),
        ("image", "got USR1", "3"),
        ("plain", "got TERM", "4"),
        ("override", "got TERM", "4"),
    ] {
        assert_eq!(st.run_ok(["logs", n]), format!("up\n{said}\n"), "{n}");
        assert_eq!(st.run_ok(["wait", n]).trim(), code, "{n}");
    }
    // --stop-timeout replaces the 10 s a stop without -t waits for a
    // command that ignores its stop signal; -t still wins.
    start(
        &st,
        &[
            "--name",
            "stubborn",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; echo up; while :; do sleep 0.1; done",
        ],
    );
    assert!(eventually(10, || st.run_ok(["logs", "stubborn"]) == "up\n"));
    let (_, out) = st.run(["--verbose", "stop", "stubborn"]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still runs 1 s after signal 15"), "{err}");
    assert_eq!(st.run_ok(["wait", "stubborn"]).trim(), "137");
    // A signal hutch cannot pass on is refused before anything is made.
    let (code, err) = st.run_fail([
        "run",
        "-d",
        "--stop-signal",
        "37",
        "--name",
        "bad",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("cannot be a stop signal"), "{err}");
    assert!(!st.run_ok(["ps", "-a"]).contains("bad"));
}

/// sha256 of `data` as hex, by the host's sha256sum.
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn logs_keep_100_mb_of_binary_output_when_the_profile_lifts_the_cap() {
    let st = busybox();
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("biglogs.toml"),
        "extends = \"default\"\n[limits]\nlog_size_max = \"unlimited\"\n",
    )
    .unwrap();
    // 100 MiB of random bytes on stdout, their sha256 on stderr.
    let id = start(
        &st,
        &[
            "--profile",
            "biglogs",
            "--name",
            "big",
            "busybox",
            "sh",
            "-c",
            "head -c 104857600 /dev/urandom > /blob && sha256sum < /blob >&2 && cat /blob",
        ],
    );
    assert_eq!(st.run_ok(["wait", "big"]).trim(), "0");
    let (_, out) = st.run(["logs", "big"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout.len(), 104_857_600);
    let said = String::from_utf8_lossy(&out.stderr);
    let want = said.split_whitespace().next().unwrap_or_default();
    assert_eq!(want.len(), 64, "{said}");
    assert_eq!(sha256_hex(&out.stdout), want, "the same bytes came back");
    let ctr = st.root().join("containers").join(&id);
    assert!(!ctr.join("ctr.log.1").exists(), "never rotated");
    // --tail counts records of both streams: the last ones are stdout's.
    let (_, tail) = st.run(["logs", "--tail", "1", "big"]);
    assert!(!tail.stdout.is_empty() && tail.stdout.len() < 1 << 20);
    assert!(out.stdout.ends_with(&tail.stdout));
}

#[test]
fn the_log_is_rotated_at_the_profiles_log_size_max() {
    let st = busybox();
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("smalllogs.toml"),
        "extends = \"default\"\n[limits]\nlog_size_max = \"64K\"\n",
    )
    .unwrap();
    // 10000 numbered lines (about 50 KB) per round, 20 rounds: 1 MB.
    let script = "i=0; while [ $i -lt 20 ]; do seq 10000; i=$((i+1)); done; echo last-line";
    let small = start(
        &st,
        &[
            "--profile",
            "smalllogs",
            "--name",
            "small",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    // Control: the default cap (10 MiB) keeps all of it.
    let whole = start(&st, &["--name", "whole", "busybox", "sh", "-c", script]);
    for n in ["small", "whole"] {
        assert_eq!(st.run_ok(["wait", n]).trim(), "0");
    }
    let all = st.run_ok(["logs", "whole"]);
    assert_eq!(all.lines().count(), 200_001);
    let (s, w) = (
        st.root().join("containers").join(&small),
        st.root().join("containers").join(&whole),
    );
    assert!(!w.join("ctr.log.1").exists());
    for f in ["ctr.log", "ctr.log.1"] {
        let len = std::fs::metadata(s.join(f)).unwrap().len();
        // A record is at most 64 KiB of output plus its header.
        assert!(len <= (64 << 10) + (64 << 10) + 100, "{f}: {len}");
    }
    // What is kept is the end of the output, whole lines in order.
    let kept = st.run_ok(["logs", "small"]);
    assert!(kept.len() < 200 << 10, "{}", kept.len());
    assert!(kept.ends_with("9999\n10000\nlast-line\n"), "{kept:.100}");
    assert!(all.ends_with(&kept));
}
