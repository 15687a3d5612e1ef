//! A container's state is right however the processes that serve it end:
//! a `hutch run -d` killed at any point, `stop` racing the container's own
//! exit, a reboot (a record that still says running, with a pid that now
//! belongs to another process), a keeper killed with SIGKILL. Nothing of a
//! container (process, mount) stays behind, and a container whose keeper
//! is gone can be started again.

mod common;

use common::{ContainerStore as Store, busybox, describe, eventually, processes_with};
use std::time::Duration;

/// `ps -a --format json`'s entry for `name`, if listed.
fn listed(st: &Store, name: &str) -> Option<serde_json::Value> {
    let all: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    all.as_array()?.iter().find(|c| c["name"] == name).cloned()
}

fn running(st: &Store, name: &str) -> bool {
    listed(st, name).is_some_and(|c| c["state"] == "running")
}

/// A distinct command line for each container, to find its processes.
fn marker(tag: &str) -> String {
    format!("sleep 7{:04}{tag}", std::process::id() % 10_000)
}

#[test]
fn a_run_d_killed_at_any_point_leaves_a_container_that_runs_or_can_be_started() {
    let st = busybox();
    let mut seen_running = 0;
    let mut seen_stopped = 0;
    for (i, delay_ms) in [0u64, 2, 5, 10, 20, 40, 80, 160, 320, 640]
        .into_iter()
        .enumerate()
    {
        let name = format!("half{i}");
        let cmd = marker(&i.to_string());
        let mut child = st
            .hutch()
            .args(["run", "-d", "--network", "none", "--name", &name])
            .args(["busybox", "sh", "-c", &cmd])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let Some(c) = listed(&st, &name) else {
            // Killed before the container was made: nothing of it anywhere.
            assert!(processes_with(&cmd).is_empty(), "{name}: nothing runs");
            continue;
        };
        // A keeper that has been handed the container but has not started
        // its command yet shows it as created: let the hand-over settle
        // (the keeper starts it, or there is no keeper).
        let keeper = format!("__keep {}", c["id"].as_str().unwrap());
        assert!(
            eventually(20, || running(&st, &name)
                || processes_with(&keeper).is_empty()),
            "{name}: its keeper neither starts it nor ends"
        );
        let c = listed(&st, &name).unwrap();
        if running(&st, &name) {
            // Its keeper has it (and keeps the lock `run -d` passed on):
            // the command runs, and stays until stopped.
            seen_running += 1;
            assert!(
                eventually(20, || !processes_with(&cmd).is_empty()),
                "{name} shows running, so its command runs: {c}"
            );
        } else {
            // Never handed over: created, never "running", no process.
            seen_stopped += 1;
            assert!(processes_with(&cmd).is_empty(), "{name}: {c}");
            std::thread::sleep(Duration::from_millis(300));
            assert!(!running(&st, &name), "{name} does not start by itself");
            assert_eq!(st.run_ok(["start", &name]).trim(), name);
            assert!(eventually(20, || !processes_with(&cmd).is_empty()));
        }
        assert_eq!(st.run_ok(["stop", "-t", "1", &name]).trim(), name);
        assert!(
            eventually(10, || processes_with(&cmd).is_empty()),
            "{name}: stopped, nothing left"
        );
        assert!(!running(&st, &name));
        st.run_ok(["rm", &name]);
    }
    // The last delays leave run -d time to finish: at least one ran.
    assert!(
        seen_running > 0,
        "{seen_running} running, {seen_stopped} stopped"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(st.root().to_str().unwrap()), "{mounts}");
}

#[test]
fn stop_racing_the_containers_own_exit_records_one_exit_and_no_error() {
    let st = busybox();
    // Each command exits 5 on its own after a short time; stop comes at
    // about the same moment.
    for (i, delay_ms) in [0u64, 50, 100, 150, 200, 250].into_iter().enumerate() {
        let name = format!("race{i}");
        let id = st
            .run_ok([
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "sleep 0.2; exit 5",
            ])
            .trim()
            .to_string();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let (_, out) = st.run(["stop", "-t", "2", &name]);
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), name);
        assert!(!running(&st, &name));
        // Its own status, or TERM's: one exit, never 137 or none.
        let code = st.run_ok(["wait", &name]).trim().to_string();
        assert!(code == "5" || code == "143", "{name}: exit {code}");
        let ps = st.run_ok(["ps", "-a", "--filter", &format!("id={id}")]);
        assert!(ps.contains(&format!("Exited ({code})")), "{ps}");
    }
}

#[test]
fn after_a_reboot_a_container_recorded_running_is_not_and_its_old_pid_is_left_alone() {
    let st = busybox();
    let id = st
        .run_ok([
            "run",
            "--network",
            "none",
            "--name",
            "before-reboot",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    let id = if id.len() == 64 {
        id
    } else {
        listed(&st, "before-reboot").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // What a power cut leaves: the record says running, its pid now
    // belongs to an unrelated process (here one of ours), and no lock is
    // held (locks do not survive a reboot).
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let path = st.root().join("containers").join(&id).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["status"] = "running".into();
    state["pid"] = bystander.id().into();
    state["exit_code"] = serde_json::Value::Null;
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    // Not running; shown as killed (its end was never recorded).
    assert!(!running(&st, "before-reboot"));
    let ps = st.run_ok(["ps", "-a"]);
    assert!(ps.contains("Killed"), "{ps}");
    // stop, kill and rm -f never signal the recorded pid.
    assert_eq!(st.run_ok(["stop", "before-reboot"]).trim(), "before-reboot");
    let (code, err) = st.run_fail(["kill", "before-reboot"]);
    assert_eq!(code, 125);
    assert!(err.contains("is not running"), "{err}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the process that now has the old pid was not signalled"
    );
    // It can be started again, and runs as any container does.
    st.run_ok(["start", "-a", "before-reboot"]);
    assert_eq!(st.run_ok(["wait", "before-reboot"]).trim(), "0");
    assert!(st.run_ok(["ps", "-a"]).contains("Exited (0)"));
    st.run_ok(["rm", "-f", "before-reboot"]);
    assert!(bystander.try_wait().unwrap().is_none(), "rm -f left it too");
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn a_container_whose_keeper_was_killed_can_be_started_again() {
    let st = busybox();
    let cmd = marker("9");
    st.run_ok([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "phoenix",
        "busybox",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(eventually(10, || !processes_with(&cmd).is_empty()));
    let keepers = processes_with("__keep");
    let keeper = keepers
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(st.root().to_str().unwrap()))
                .unwrap_or(false)
        })
        .expect("the keeper runs");
    let _ = std::process::Command::new("kill")
        .args(["-9", &keeper.to_string()])
        .status();
    assert!(eventually(10, || processes_with(&cmd).is_empty()));
    assert!(eventually(10, || !running(&st, "phoenix")));
    assert_eq!(st.run_ok(["start", "phoenix"]).trim(), "phoenix");
    assert!(eventually(20, || !processes_with(&cmd).is_empty()));
    assert!(running(&st, "phoenix"));
    st.run_ok(["stop", "-t", "1", "phoenix"]);
    assert!(eventually(10, || processes_with(&cmd).is_empty()));
}

#[test]
fn a_stopped_container_whose_files_are_in_use_shows_as_stopped_and_stop_says_busy() {
    let st = busybox();
    let id = st
        .run_ok([
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "held",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    assert_eq!(st.run_ok(["wait", "held"]).trim(), "0");
    // What `hutch cp` or `export` of a stopped container does: hold its
    // running lock (so that nothing starts it meanwhile) without serving
    // it. Here this test process holds it.
    let lock = st.root().join("containers").join(&id).join("running.lock");
    let holder = std::fs::File::options().write(true).open(&lock).unwrap();
    holder.lock().unwrap();
    let c = listed(&st, "held");
    assert!(
        eventually(10, || {
            let (_, out) = st.run(["stop", "held"]);
            String::from_utf8_lossy(&out.stderr).contains("is busy")
        }),
        "{c:?}"
    );
    let c = listed(&st, "held").unwrap();
    assert_eq!(c["state"], "exited", "{c}");
    assert!(
        c["status"].as_str().unwrap().starts_with("Exited (0)"),
        "{c}"
    );
    assert!(!st.run_ok(["ps"]).contains("held"), "not listed as running");
    // start waits for the files to be free, then starts it.
    let mut starting = st
        .hutch()
        .args(["start", "held"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(starting.try_wait().unwrap().is_none(), "start waits");
    let started = || st.run_ok(["container", "inspect", "-f", "{{.State.StartedAt}}", "held"]);
    let before = started();
    drop(holder);
    let out = starting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "held");
    assert_eq!(st.run_ok(["wait", "held"]).trim(), "0");
    assert_ne!(before, started(), "it ran again");
    // Control: with the lock free it is simply stopped (stop: no error).
    assert_eq!(st.run_ok(["stop", "held"]).trim(), "held");
}
