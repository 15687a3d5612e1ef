//! `hutch container inspect` (Podman's shape, `-f` templates) and
//! `hutch top` (a running container's processes as it sees them).

mod common;

use common::{ContainerStore as Store, busybox, describe, eventually};
use serde_json::{Value, json};

/// Go's zero time: what Podman (and hutch) show for "never".
const NEVER: &str = "0001-01-01T00:00:00Z";

/// `hutch run -d --network none ARGS...`; the full ID.
fn start(st: &Store, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    let id = st.run_ok(all).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");
    id
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `hutch container inspect KEY`: the one object of the array.
fn inspect(st: &Store, key: &str) -> Value {
    let v = json_of(&st.run_ok(["container", "inspect", key]));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    v[0].clone()
}

/// `hutch top --format json KEY`.
fn top_json(st: &Store, key: &str) -> Vec<Value> {
    json_of(&st.run_ok(["top", "--format", "json", key]))
        .as_array()
        .unwrap()
        .clone()
}

/// Fields of /proc/PID/status line `key` (e.g. NSpid).
fn proc_status(pid: i64, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn inspect_of_a_running_container_shows_what_was_asked() {
    let st = busybox();
    let host_dir = st.tmp().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    let bind = format!("{}:/host:ro", host_dir.display());
    let out = st
        .hutch()
        .args([
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1::8080",
            "-v",
            "data:/data",
            "-v",
            &bind,
            "--restart",
            "on-failure:3",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "--hostname",
            "h1",
            "busybox",
            "sh",
            "-c",
            "echo hello; sleep 1000 & sleep 2000 & wait",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    let port = err
        .lines()
        .find_map(|l| l.strip_prefix("hutch: port 8080/tcp is published on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no port reported: {err}"))
        .trim()
        .to_string();

    let v = inspect(&st, "web");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "web");
    assert_eq!(v["ImageName"], "busybox");
    let image = json_of(&st.run_ok(["inspect", "busybox"]));
    assert_eq!(
        v["Image"], image[0]["Id"],
        "the image's ID, as inspect shows it"
    );
    assert_eq!(v["ImageDigest"], image[0]["Digest"]);
    assert_eq!(v["Path"], "sh");
    assert_eq!(
        v["Args"],
        json!(["-c", "echo hello; sleep 1000 & sleep 2000 & wait"])
    );
    // State.
    let s = &v["State"];
    assert_eq!(s["Status"], "running", "{v:#}");
    assert_eq!(s["Running"], true);
    assert_eq!(s["Paused"], false);
    assert_eq!(s["Restarting"], false);
    assert_eq!(s["ExitCode"], 0);
    assert_ne!(s["StartedAt"], NEVER);
    assert_eq!(s["FinishedAt"], NEVER);
    // Pid is the container's PID 1 on the host; ConmonPid its keeper.
    let pid = s["Pid"].as_i64().unwrap();
    let keeper = s["ConmonPid"].as_i64().unwrap();
    assert!(pid > 0 && keeper > 0 && pid != keeper, "{s}");
    assert_eq!(proc_status(pid, "NSpid").last().unwrap(), "1");
    assert_eq!(
        proc_status(keeper, "NSpid").len(),
        1,
        "the keeper is outside"
    );
    // Config.
    let c = &v["Config"];
    assert_eq!(
        c["Cmd"],
        json!(["sh", "-c", "echo hello; sleep 1000 & sleep 2000 & wait"])
    );
    assert_eq!(c["Entrypoint"], Value::Null);
    assert!(
        c["Env"].as_array().unwrap().contains(&json!("FOO=bar")),
        "{c}"
    );
    assert_eq!(c["WorkingDir"], "/tmp");
    assert_eq!(c["Hostname"], "h1");
    assert_eq!(c["User"], "");
    // HostConfig and ports.
    assert_eq!(
        v["HostConfig"]["RestartPolicy"],
        json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    let binding = json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]});
    assert_eq!(v["HostConfig"]["PortBindings"], binding);
    assert_eq!(v["NetworkSettings"]["Ports"], binding);
    assert_eq!(v["RestartCount"], 0);
    // Mounts: the named volume and the bind, as asked.
    let mounts = v["Mounts"].as_array().unwrap();
    let data = mounts
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap_or_else(|| panic!("{mounts:?}"));
    assert_eq!(data["Type"], "volume");
    assert_eq!(data["Name"], "data");
    assert_eq!(data["RW"], true);
    assert!(
        data["Source"]
            .as_str()
            .unwrap()
            .ends_with("volumes/data/_data"),
        "{data}"
    );
    let host = mounts.iter().find(|m| m["Destination"] == "/host").unwrap();
    assert_eq!(host["Type"], "bind");
    assert_eq!(host["RW"], false);
    assert_eq!(host["Source"], host_dir.to_str().unwrap());
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    // The log it writes to, in its directory.
    let log = v["LogPath"].as_str().unwrap().to_string();
    assert_eq!(v["HostConfig"]["LogConfig"]["Path"], log.as_str());
    assert!(eventually(10, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("stdout F hello"))
    }));
    let dir = v["Hutch"]["Dir"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(&log).parent().unwrap().to_str(),
        Some(dir)
    );
    assert_eq!(v["Hutch"]["Profile"], "default");
    assert_eq!(v["Hutch"]["Volumes"], json!(["data"]));

    // Control: a foreground container asked for none of it.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--name",
        "plain",
        "busybox",
        "true",
    ]);
    let p = inspect(&st, "plain");
    assert_eq!(
        p["HostConfig"]["RestartPolicy"],
        json!({"Name": "no", "MaximumRetryCount": 0})
    );
    assert_eq!(p["HostConfig"]["PortBindings"], json!({}));
    assert_eq!(p["Mounts"], json!([]));
    assert_eq!(p["LogPath"], "");
    assert_eq!(p["Config"]["WorkingDir"], "/");
    assert_eq!(p["Config"]["Hostname"], "plain");
    assert!(
        !p["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&json!("FOO=bar"))
    );
}

#[test]
fn inspect_of_an_exited_container_and_of_entrypoint_and_user() {
    let st = busybox();
    start(&st, &["--name", "seven", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(st.run_ok(["wait", "seven"]).trim(), "7");
    let v = inspect(&st, "seven");
    let s = &v["State"];
    assert_eq!(s["Status"], "exited", "{v:#}");
    assert_eq!(s["Running"], false);
    assert_eq!(s["ExitCode"], 7);
    assert_eq!(
        (s["Pid"].as_i64(), s["ConmonPid"].as_i64()),
        (Some(0), Some(0))
    );
    let (started, finished) = (
        s["StartedAt"].as_str().unwrap(),
        s["FinishedAt"].as_str().unwrap(),
    );
    assert!(started != NEVER && finished != NEVER, "{s}");
    assert!(finished >= started, "{s}");
    assert_eq!(
        v["Hutch"]["Status"].as_str().unwrap().get(..10),
        Some("Exited (7)")
    );

    // --entrypoint and -u: Podman's Config.Entrypoint, Cmd and User.
    st.run_ok([
        "run",
        "--network",
        "none",
        "--name",
        "echoer",
        "-u",
        "1234",
        "--entrypoint",
        "/bin/echo",
        "busybox",
        "hi",
        "there",
    ]);
    let v = inspect(&st, "echoer");
    assert_eq!(v["Config"]["Entrypoint"], json!(["/bin/echo"]));
    assert_eq!(v["Config"]["Cmd"], json!(["hi", "there"]));
    assert_eq!(v["Path"], "/bin/echo");
    assert_eq!(v["Args"], json!(["hi", "there"]));
    assert_eq!(v["Config"]["User"], "1234");
    assert_eq!(v["State"]["ExitCode"], 0);
    assert_eq!(
        v["EffectiveCaps"],
        json!([]),
        "a user other than root has none"
    );
    assert!(!v["BoundingCaps"].as_array().unwrap().is_empty());
}

#[test]
fn inspect_of_several_names_prints_those_found_and_fails_for_the_others() {
    let st = busybox();
    let a = start(&st, &["--name", "a", "busybox", "sleep", "1000"]);
    let b = start(&st, &["--name", "b", "busybox", "sleep", "1000"]);
    let v = json_of(&st.run_ok(["container", "inspect", "b", &a[..12]]));
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.as_str(), a.as_str()], "in the order asked");
    // An unknown name: the others are still printed, then the error.
    let (_, out) = st.run(["container", "inspect", "a", "nope", "b"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let v = json_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v.as_array().unwrap().len(), 2, "{v:#}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no container \"nope\""), "{err}");
    assert!(!err.contains("\"a\"") && !err.contains("\"b\""), "{err}");
    // `hutch inspect` takes several names too, images and containers.
    let v = json_of(&st.run_ok(["inspect", "busybox", "a"]));
    assert!(v[0]["Digest"].is_string() && v[1]["Name"] == "a", "{v:#}");
}

#[test]
fn inspect_format_takes_go_templates() {
    let st = busybox();
    start(&st, &["--name", "t1", "busybox", "sleep", "1000"]);
    start(&st, &["--name", "t2", "busybox", "sleep", "2000"]);
    assert_eq!(
        st.run_ok(["container", "inspect", "-f", "{{.State.Status}}", "t1"]),
        "running\n"
    );
    assert_eq!(
        st.run_ok([
            "inspect",
            "--format",
            "{{.Name}} {{json .Config.Cmd}}",
            "t1",
            "t2"
        ]),
        "t1 [\"sleep\",\"1000\"]\nt2 [\"sleep\",\"2000\"]\n"
    );
    let pid = st.run_ok(["inspect", "-f", "{{.State.Pid}}", "t1"]);
    assert!(pid.trim().parse::<u32>().unwrap() > 0, "{pid}");
    assert_eq!(
        st.run_ok(["inspect", "-f", "{{.HostConfig.RestartPolicy}}", "t1"]),
        "map[MaximumRetryCount:0 Name:no]\n"
    );
    // --format json is the default output.
    assert_eq!(
        json_of(&st.run_ok(["container", "inspect", "--format", "json", "t1"])),
        json_of(&st.run_ok(["container", "inspect", "t1"]))
    );
    // Mistakes are named, and nothing is printed.
    for (template, says) in [
        ("{{.State.Nope}}", ".State has no field \"Nope\""),
        ("{{.State.Status", "not closed"),
        ("{{range .Mounts}}{{.Source}}{{end}}", "is not supported"),
        ("{{State}}", "is not supported"),
    ] {
        let (_, out) = st.run(["container", "inspect", "-f", template, "t1"]);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{template}: {}",
            describe(&out)
        );
        assert!(out.stdout.is_empty(), "{template}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{template}: {err}");
    }
    let (_, err) = st.run_fail(["inspect", "-f", "{{.State.Nope}}", "t1"]);
    assert!(err.contains("Status"), "lists the fields there are: {err}");
}

/// The rows of `hutch top` as (USER, PID, PPID, COMMAND), checking the
/// header.
fn top_rows(st: &Store, key: &str) -> Vec<(String, i64, i64, String)> {
    let out = st.run_ok(["top", key]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"
        ],
        "{out}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 8, "{out}");
            f[3].parse::<f64>()
                .unwrap_or_else(|_| panic!("%CPU {}: {out}", f[3]));
            assert!(f[4].ends_with('s') && f[6].ends_with('s'), "{out}");
            assert_eq!(f[5], "?", "no terminal: {out}");
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[7..].join(" "),
            )
        })
        .collect()
}

#[test]
fn top_shows_the_processes_as_the_container_sees_them() {
    let st = busybox();
    start(
        &st,
        &[
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & sleep 2000 & wait",
        ],
    );
    // Another container's processes are never listed (control below).
    start(&st, &["--name", "other", "busybox", "sleep", "3030"]);
    let mut rows = Vec::new();
    assert!(
        eventually(10, || {
            rows = top_rows(&st, "web");
            rows.len() == 4
        }),
        "{rows:?}"
    );
    // hutch's init is PID 1; the command is its child, and forked both.
    assert_eq!(
        rows[0],
        ("root".into(), 1, 0, "hutch-init".into()),
        "{rows:?}"
    );
    let sh = rows
        .iter()
        .find(|r| r.3.starts_with("sh -c"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(sh.2, 1, "{rows:?}");
    for cmd in ["sleep 1000", "sleep 2000"] {
        let r = rows
            .iter()
            .find(|r| r.3 == cmd)
            .unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!((r.0.as_str(), r.2), ("root", sh.1), "{rows:?}");
    }
    assert!(!rows.iter().any(|r| r.3.contains("3030")), "{rows:?}");
    let other = top_rows(&st, "other");
    assert_eq!(other.len(), 2, "{other:?}");
    assert_eq!((other[1].1, other[1].3.as_str()), (2, "sleep 3030"));

    // --format json: one object per process, with the same columns.
    let procs = top_json(&st, "web");
    assert_eq!(procs.len(), 4);
    let keys: std::collections::BTreeSet<&str> = procs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "args", "etime", "pcpu", "pid", "ppid", "time", "tty", "user"
        ]
        .into_iter()
        .collect()
    );
    let sleep = procs
        .iter()
        .find(|p| p["args"] == json!(["sleep", "1000"]))
        .unwrap();
    assert_eq!(sleep["ppid"], sh.1);
    assert_eq!(sleep["user"], "root");
    assert!(sleep["pcpu"].is_number() && sleep["etime"].is_string());

    // Descriptors: hpid is the host's pid of the same process.
    let out = st.run_ok(["top", "web", "pid,comm", "hpid"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND", "HPID"]
    );
    let mut sleeps = 0;
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", f[2])).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if f[1] == "sleep" {
            sleeps += 1;
            assert!(cmdline.starts_with("sleep "), "{out}: {cmdline}");
        }
    }
    assert_eq!(sleeps, 2, "{out}");
    let (code, err) = st.run_fail(["top", "web", "pid,bogus"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown descriptor \"bogus\""), "{err}");

    // A command `hutch exec` started is in the container, its parent
    // outside (PPID 0), as `ps` inside shows it.
    let mut exec = st
        .hutch()
        .args(["exec", "web", "sleep", "4040"])
        .spawn()
        .unwrap();
    let mut found = None;
    let seen = eventually(10, || {
        found = top_json(&st, "web")
            .into_iter()
            .find(|p| p["args"] == json!(["sleep", "4040"]));
        found.is_some()
    });
    let _ = exec.kill();
    let _ = exec.wait();
    assert!(seen, "the exec'd command is listed");
    let found = found.unwrap();
    assert_eq!(found["ppid"], 0, "{found}");
    assert!(found["pid"].as_i64().unwrap() > 1, "{found}");
}

#[test]
fn top_names_users_from_the_containers_passwd() {
    let st = busybox();
    start(
        &st,
        &["--name", "num", "-u", "1234", "busybox", "sleep", "1000"],
    );
    start(
        &st,
        &[
            "--name", "named", "-u", "nobody", "busybox", "sleep", "1000",
        ],
    );
    let mut rows = Vec::new();
    assert!(eventually(10, || {
        rows = top_rows(&st, "num");
        rows.len() == 2
    }));
    assert_eq!(rows[1].0, "1234", "no name in busybox's passwd: {rows:?}");
    assert_eq!(rows[0].0, "root", "hutch's init: {rows:?}");
    let rows = top_rows(&st, "named");
    assert_eq!(rows[1].0, "nobody", "{rows:?}");
    // huser is the host's uid of the same process: not ours, a subordinate one.
    let out = st.run_ok(["top", "--format", "json", "num", "huser", "hpid"]);
    let procs = json_of(&out);
    let host_uid = proc_status(procs[1]["hpid"].as_i64().unwrap(), "Uid")[1].clone();
    assert_ne!(
        host_uid,
        proc_status(std::process::id() as i64, "Uid")[1],
        "{out}"
    );
}

#[test]
fn top_of_a_stopped_container_says_how_to_start_it() {
    let st = busybox();
    start(&st, &["--name", "idle", "busybox", "sleep", "1000"]);
    st.run_ok(["stop", "-t", "1", "idle"]);
    let (code, err) = st.run_fail(["top", "idle"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("container idle is not running") && err.contains("`hutch start idle`"),
        "{err}"
    );
    // Control: started again, it has processes.
    st.run_ok(["start", "idle"]);
    assert!(eventually(10, || top_json(&st, "idle").len() == 2));
    let (_, err) = st.run_fail(["top", "nothing-here"]);
    assert!(err.contains("no container \"nothing-here\""), "{err}");
}
