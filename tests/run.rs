//! `hutch run`, `ps`, `rm` as an unprivileged user on the busybox fixture:
//! options, exit codes, the container's view of the system, signals, the
//! terminal, parallel runs, and a SIGKILL of hutch.

mod common;

use common::{TestStore, describe, fixture, processes_with};
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A store with the busybox fixture loaded as `busybox`.
fn busybox() -> TestStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    st
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hutch run --rm ARGS...`, whatever the status.
fn run(st: &TestStore, args: &[&str]) -> Output {
    st.run(["run", "--rm"].iter().chain(args)).1
}

fn run_ok(st: &TestStore, args: &[&str]) -> String {
    let out = run(st, args);
    assert!(
        out.status.success(),
        "hutch run {args:?}\n{}",
        describe(&out)
    );
    text(&out)
}

#[test]
fn exit_statuses_follow_docker() {
    let st = busybox();
    let code = |args: &[&str]| run(&st, args).status.code();
    assert_eq!(code(&["busybox", "sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["busybox", "true"]), Some(0));
    let out = run(&st, &["busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command: command not found"));
    let out = run(&st, &["busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", describe(&out));
    assert_eq!(code(&["busybox", "sh", "-c", "kill -9 $$"]), Some(137));
    assert_eq!(code(&["busybox", "sh", "-c", "kill -TERM $$"]), Some(143));
    let (c, err) = st.run_fail(["run", "--rm", "no-such-image", "true"]);
    assert_eq!(c, 125);
    assert!(err.contains("no-such-image"), "{err}");
    let (c, err) = st.run_fail(["run", "--rm", "-v", "./relative:/x", "busybox", "true"]);
    assert_eq!(c, 125, "{err}");
    assert!(
        st.run_ok(["ps", "-aq"]).trim().is_empty(),
        "--rm removed every container, also after failures"
    );
}

#[test]
fn image_config_and_flags() {
    let st = busybox();
    let envf = st.tmp().join("envfile");
    std::fs::write(&envf, "# comment\nFROM_FILE=yes\nSHARED=file\n").unwrap();
    let out = run_ok(
        &st,
        &[
            "-e",
            "A=1",
            "-e",
            "SHARED=flag",
            "--env-file",
            envf.to_str().unwrap(),
            "-w",
            "/work/dir",
            "-h",
            "box",
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_FILE $SHARED $HOSTNAME $PATH; pwd; hostname; cat /etc/hostname; grep box /etc/hosts",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "1 yes flag box /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(&lines[1..4], ["/work/dir", "box", "box"]);
    assert!(lines[4].contains("box"), "{out}");
    // The image's Cmd (sh) reads the empty stdin and exits 0.
    assert_eq!(run_ok(&st, &["busybox"]), "");
    assert_eq!(
        run_ok(&st, &["--entrypoint", "echo", "busybox", "a", "b"]),
        "a b\n"
    );
    // Users from the image's /etc/passwd (busybox fixture: `user` 1000).
    let id = run_ok(&st, &["-u", "user", "busybox", "id"]);
    assert!(id.starts_with("uid=1000(user) gid=1000(user)"), "{id}");
    assert_eq!(
        run_ok(
            &st,
            &["-u", "1234:55", "busybox", "sh", "-c", "id -u; id -g"]
        ),
        "1234\n55\n"
    );
    let (c, err) = st.run_fail(["run", "--rm", "-u", "nobody-here", "busybox", "id"]);
    assert_eq!(c, 125);
    assert!(err.contains("no user"), "{err}");
    // --name shows in ps; a second container of the same name is refused.
    st.run_ok(["run", "--name", "named", "busybox", "true"]);
    let ps = st.run_ok(["ps", "-a"]);
    assert!(ps.contains("named") && ps.contains("Exited (0)"), "{ps}");
    let (c, err) = st.run_fail(["run", "--name", "named", "busybox", "true"]);
    assert_eq!(c, 125);
    assert!(err.contains("in use"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "named");
    assert_eq!(json[0]["exit_code"], 0);
    st.run_ok(["rm", "named"]);
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}

#[test]
fn dry_run_prints_the_spec_and_starts_nothing() {
    let st = busybox();
    let out = st.run_ok([
        "run",
        "--dry-run",
        "-e",
        "X=1",
        "-v",
        "/tmp:/host-tmp:ro",
        "--read-only",
        "busybox",
        "echo",
        "hi",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("the spec is JSON");
    assert_eq!(v["process"]["args"], serde_json::json!(["echo", "hi"]));
    assert!(
        v["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&"X=1".into())
    );
    assert_eq!(v["rootfs"]["read_only"], true);
    let mounts = v["mounts"].as_array().unwrap();
    let at = |d: &str| mounts.iter().find(|m| m["destination"] == d);
    let vol = at("/host-tmp").expect("the volume is listed");
    assert_eq!(vol["type"], "bind");
    assert_eq!(vol["read_only"], true);
    // --read-only keeps /tmp, /var/tmp and /run writable (tmpfs).
    for d in ["/tmp", "/var/tmp", "/run"] {
        assert_eq!(at(d).map(|m| &m["type"]), Some(&"tmpfs".into()), "{d}");
    }
    assert_eq!(v["security"]["no_new_privs"], true);
    assert_eq!(v["profile"], "default");
    assert!(
        st.run_ok(["ps", "-aq"]).trim().is_empty(),
        "nothing was created"
    );
}

#[test]
fn the_container_sees_its_own_system() {
    let st = busybox();
    let out = run_ok(
        &st,
        &[
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo pid=$$; ls /proc | grep -c '^[0-9]'; ls /dev | tr '\\n' ' '; echo; \
             test -c /dev/null && echo null-ok; \
             echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sys-ro; \
             touch /sys/x 2>/dev/null || echo sysfs-ro; \
             wc -c < /proc/keys; \
             cat /proc/self/uid_map | head -1; \
             mount | grep -c ' /dev/pts '; \
             ip link 2>/dev/null | grep -c '^[0-9]'",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    // hutch's init is PID 1 (it reaps and forwards signals); the command
    // is its only child.
    assert_eq!(lines[0], "pid=2", "{out}");
    let procs: u32 = lines[1].parse().unwrap();
    assert!(
        procs <= 4,
        "only the container's processes are visible: {out}"
    );
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx",
    ] {
        assert!(
            lines[2].split(' ').any(|n| n == d),
            "/dev/{d} missing: {out}"
        );
    }
    assert_eq!(&lines[3..6], ["null-ok", "sys-ro", "sysfs-ro"], "{out}");
    assert_eq!(lines[6].trim(), "0", "/proc/keys is masked: {out}");
    assert!(lines[7].split_whitespace().next() == Some("0"), "{out}");
    assert_eq!(lines[8], "1", "a private devpts: {out}");
    assert_eq!(lines[9], "1", "--network none: only lo: {out}");
}

#[test]
fn changes_stay_in_the_container() {
    let st = busybox();
    st.run_ok([
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo data > /etc/new; rm /bin/ls",
    ]);
    let out = run_ok(
        &st,
        &["busybox", "sh", "-c", "ls /etc/new 2>&1; ls /bin/ls"],
    );
    assert!(
        out.contains("No such file") && out.contains("/bin/ls"),
        "{out}"
    );
    // The change is in c1's upper dir.
    let ps: serde_json::Value =
        serde_json::from_str(&st.run_ok(["ps", "-a", "--format", "json"])).unwrap();
    let id = ps[0]["id"].as_str().unwrap().to_string();
    let upper = st.root().join("containers").join(&id).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/new")).unwrap(),
        "data\n"
    );
    st.run_ok(["rm", "c1"]);
    assert!(!st.root().join("containers").join(&id).exists());
    // prune keeps nothing it should not: the image still runs.
    st.run_ok(["prune"]);
    assert_eq!(run_ok(&st, &["busybox", "echo", "ok"]), "ok\n");
}

#[test]
fn volumes_tmpfs_and_read_only() {
    let st = busybox();
    let vol = st.tmp().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("in"), "from host\n").unwrap();
    let rw = format!("{}:/data", vol.display());
    let ro = format!("{}:/ro:ro", vol.display());
    let out = run_ok(
        &st,
        &[
            "-v",
            &rw,
            "-v",
            &ro,
            "--tmpfs",
            "/scratch",
            "--read-only",
            "busybox",
            "sh",
            "-c",
            "cat /data/in; echo out > /data/out; echo x > /ro/y 2>/dev/null || echo ro-refused; \
             echo x > /etc/z 2>/dev/null || echo root-ro; echo s > /scratch/s && cat /scratch/s; \
             mount | grep -c ' /scratch type tmpfs'",
        ],
    );
    assert_eq!(out, "from host\nro-refused\nroot-ro\ns\n1\n");
    assert_eq!(std::fs::read_to_string(vol.join("out")).unwrap(), "out\n");
    assert!(!vol.join("y").exists());
}

#[test]
fn stdin_is_binary_safe_with_i_and_empty_without() {
    let st = busybox();
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut child = st
        .hutch()
        .args(["run", "--rm", "-i", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&d2));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        out.stdout == data,
        "1 MB through cat came back changed ({} bytes)",
        out.stdout.len()
    );
    // Without -i the command reads /dev/null even when hutch's stdin has data.
    let mut child = st
        .hutch()
        .args(["run", "--rm", "busybox", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ignored").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out).trim(), "0");
}

/// Read `r` until `needle` shows up (or panic after 20 s).
fn wait_for(r: &mut impl Read, needle: &str) -> String {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while t0.elapsed() < Duration::from_secs(20) {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            return String::from_utf8_lossy(&seen).into_owned();
        }
    }
    panic!(
        "no {needle:?} in output: {:?}",
        String::from_utf8_lossy(&seen)
    );
}

#[test]
fn signals_sent_to_hutch_reach_the_command() {
    let st = busybox();
    let mut child = st
        .hutch()
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    wait_for(&mut out, "ready");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("got-term"), "{rest}");
    assert_eq!(status.code(), Some(3));
}

/// Drive `hutch run -t` through a pty made by python's pty module.
const PTY_DRIVER: &str = r#"
import os, pty, sys, time, struct, fcntl, termios, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
out = b""
def read_until(needle, t=20):
    global out
    end = time.time() + t
    while needle not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return needle in out
ok = read_until(b"ready")
os.write(fd, b"\x03")
read_until(b"got-int")
try:
    while True:
        b = os.read(fd, 4096)
        if not b: break
        out += b
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.stdout.write("\nEXIT %d\n" % os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_tty_session_gets_size_and_ctrl_c() {
    let st = busybox();
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PTY_DRIVER).arg(common::hutch_bin());
    for (k, v) in st.hutch().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.args([
        "run", "--rm", "-t", "busybox", "sh", "-c",
        "test -t 0 && echo is-a-tty; stty size; trap 'echo got-int; exit 5' INT; echo ready; sleep 30",
    ]);
    let out = cmd.output().unwrap();
    let t = text(&out);
    assert!(t.contains("is-a-tty"), "{t}");
    assert!(t.contains("33 77"), "window size passed on: {t}");
    assert!(
        t.contains("got-int"),
        "Ctrl-C became SIGINT in the container: {t}"
    );
    assert!(t.trim_end().ends_with("EXIT 5"), "{t}");
}

#[test]
fn twenty_runs_in_parallel() {
    let st = busybox();
    let children: Vec<_> = (0..20)
        .map(|i| {
            st.hutch()
                .args(["run", "--rm", "busybox", "sh", "-c"])
                .arg(format!("echo n{i} > /tmp/f; cat /tmp/f"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "run {i}: {}", describe(&out));
        assert_eq!(text(&out), format!("n{i}\n"));
    }
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}

/// pids of the test user's processes whose command line contains `needle`.

#[test]
fn sigkill_of_hutch_leaves_nothing_running() {
    let st = busybox();
    let marker = format!("sleep 4242{}", std::process::id() % 1000);
    let mut child = st
        .hutch()
        .args(["run", "--name", "victim", "busybox", "sh", "-c"])
        .arg(format!("echo ready; {marker}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(child.stdout.as_mut().unwrap(), "ready");
    assert!(
        st.run_ok(["ps"]).contains("victim"),
        "running containers are listed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while !processes_with(&marker).is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        processes_with(&marker).is_empty(),
        "the container's processes died with hutch"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("fuse.hutch"),
        "nothing mounted on the host"
    );
    // The container's init holds the running lock too, and an exiting
    // process leaves /proc's cmdline before it closes its descriptors.
    let t0 = Instant::now();
    let mut ps = st.run_ok(["ps", "-a"]);
    while !ps.contains("Killed") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        ps = st.run_ok(["ps", "-a"]);
    }
    assert!(ps.contains("victim") && ps.contains("Killed"), "{ps}");
    st.run_ok(["rm", "victim"]);
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}

#[test]
fn rm_force_stops_a_running_container() {
    let st = busybox();
    let mut child = st
        .hutch()
        .args([
            "run",
            "--name",
            "busy",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 60",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(child.stdout.as_mut().unwrap(), "ready");
    let (c, err) = st.run_fail(["rm", "busy"]);
    assert_eq!(c, 125);
    assert!(
        err.contains("container busy is running; `hutch rm -f busy` stops it"),
        "{err}"
    );
    st.run_ok(["rm", "-f", "busy"]);
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}

#[test]
fn host_image_is_the_hosts_root_without_its_private_places() {
    let st = TestStore::new();
    let home_file = st.home().join("secret");
    std::fs::write(&home_file, "s").unwrap();
    let out = run_ok(
        &st,
        &[
            "host",
            "sh",
            "-c",
            "cat /etc/os-release | grep -c ID=; for d in /home /root /tmp; do ls -A $d; done | wc -l; \
             echo x > /usr/hutch-test 2>&1 && echo wrote-usr",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].parse::<u32>().unwrap() >= 1, "{out}");
    assert_eq!(lines[1], "0", "/home, /root and /tmp are empty: {out}");
    assert_eq!(
        lines[2], "wrote-usr",
        "writes go to the container's upper: {out}"
    );
    assert!(
        !std::path::Path::new("/usr/hutch-test").exists(),
        "the host is untouched"
    );
    let (c, _) = st.run_fail(["run", "--rm", "host"]);
    assert_eq!(c, 125, "host has no default command");
}

/// The Debian fixture: many owners, presented by the overlay from the
/// layer's records. With a subordinate id range every owner is mapped; with
/// a single id (HUTCH_IDMAP=single, as for a user without a range) only
/// root is, the others show as nobody and chown to them is refused by the
/// kernel (EINVAL), while everything root does still works.
#[test]
fn debian_owners_with_and_without_a_subuid_range() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let script = "ls -ld /var/cache/apt/archives/partial | awk '{print $3}'; \
                  touch /tmp/x; chown _apt:nogroup /tmp/x 2>/dev/null && stat -c '%U:%G' /tmp/x || echo chown-refused; \
                  su -s /bin/sh -c 'id -un' _apt 2>/dev/null || echo su-refused; \
                  apt-get --version | head -1 | cut -d' ' -f1";
    let out = run_ok(&st, &["debian:bookworm", "sh", "-c", script]);
    assert_eq!(
        out, "_apt\n_apt:nogroup\n_apt\napt\n",
        "with a subuid range"
    );
    let single = st
        .hutch()
        .env("HUTCH_IDMAP", "single")
        .args(["run", "--rm", "debian:bookworm", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(single.status.success(), "{}", describe(&single));
    assert_eq!(
        text(&single),
        "nobody\nchown-refused\nsu-refused\napt\n",
        "with one id"
    );
}

/// The `dev` profile: the current directory at the same path, as the
/// working directory, and the user's own uid/gid inside (keep-id), so files
/// made inside belong to the user on the host.
#[test]
fn dev_profile_mounts_the_project_and_keeps_the_user() {
    let st = busybox();
    let proj = st.tmp().join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("Makefile"), "all:\n").unwrap();
    let out = st
        .hutch()
        .current_dir(&proj)
        .args([
            "run",
            "--rm",
            "--profile",
            "dev",
            "busybox",
            "sh",
            "-c",
            "pwd; id -u; id -g; ls; echo built > out.txt",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    assert_eq!(
        text(&out),
        format!("{}\n{uid}\n{gid}\nMakefile\n", proj.display())
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(proj.join("out.txt")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "owned by the user on the host"
    );
}

/// `dev`'s keep-id gives the user a name inside, as Podman's keep-id does:
/// passwd and group entries with the home path, added to the container's
/// own layer (the image is unchanged, and tools that rewrite /etc/passwd
/// by renaming a new file over it still work).
#[test]
fn dev_profile_gives_the_user_a_name_and_home() {
    let st = busybox();
    let proj = st.tmp().join("named");
    std::fs::create_dir(&proj).unwrap();
    let uid = rustix::process::getuid().as_raw();
    let me = std::env::var("USER").unwrap_or_default();
    // Control: the image itself has no entry for the user.
    let plain = st.run_offline(
        "busybox",
        &["sh", "-c", &format!("grep -c ':{uid}:' /etc/passwd; true")],
    );
    assert_eq!(plain, "0\n", "the busybox image already knows uid {uid}");
    let out = st
        .hutch()
        .current_dir(&proj)
        .args([
            "run",
            "--rm",
            "--profile",
            "dev",
            "busybox",
            "sh",
            "-c",
            "whoami; id -gn >/dev/null && echo group-ok; echo ~; \
             sed -i 's/^root:/root:/' /etc/passwd && echo rewritable",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<String> = text(&out).lines().map(String::from).collect();
    if !me.is_empty() {
        assert_eq!(lines[0], me, "{}", describe(&out));
    }
    assert_eq!(lines[1], "group-ok", "{}", describe(&out));
    assert_eq!(lines[2], st.home().to_str().unwrap(), "{}", describe(&out));
    assert_eq!(lines[3], "rewritable", "{}", describe(&out));
    // The image is unchanged.
    let after = st.run_offline(
        "busybox",
        &["sh", "-c", &format!("grep -c ':{uid}:' /etc/passwd; true")],
    );
    assert_eq!(after, "0\n");
}

/// hutch holds a host file for each file open in the container (every
/// running program's included): it lifts its own soft open-files limit,
/// and gives the container the limit it started with.
#[test]
fn many_programs_at_once_do_not_exhaust_hutchs_open_files() {
    let st = busybox();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    // More programs than the usual soft limit of 1024, well within the hard.
    let n = (soft + 100).min(hard.saturating_sub(200));
    if n <= soft {
        eprintln!("hard open-files limit {hard} leaves no room above {soft}: nothing to test");
        return;
    }
    let script = format!(
        "ulimit -n; i=0; while [ $i -lt {n} ]; do sleep 30 & i=$((i + 1)); done; \
         echo started; kill $(jobs -p) 2>/dev/null; wait; echo done"
    );
    let out = run(&st, &["--network", "none", "busybox", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        text(&out),
        format!("{soft}\nstarted\ndone\n"),
        "{}",
        describe(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Too many open files"),
        "{}",
        describe(&out)
    );
}

/// Run hutch with a new terminal as its 0, 1 and 2; its exit status and
/// what appeared on the terminal (carriage returns left out).
fn on_terminal(st: &TestStore, args: &[&str]) -> (Option<i32>, String) {
    let (master, slave) = common::pty();
    let status = st
        .hutch()
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .status()
        .unwrap();
    let shown = common::read_pty(&master).replace('\r', "");
    drop(slave);
    (status.code(), shown)
}

#[test]
fn tty_is_a_pty_of_the_containers_devpts_and_its_console() {
    let st = busybox();
    let (code, shown) = on_terminal(
        &st,
        &[
            "run",
            "--rm",
            "-t",
            "busybox",
            "sh",
            "-c",
            "tty; test -c /dev/console && echo console-is-a-device; \
             [ \"$(stat -c %t:%T /dev/console)\" = \"$(stat -L -c %t:%T \"$(tty)\")\" ] && echo console-is-the-tty; \
             echo pts: $(ls /dev/pts)",
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    // The container's own /dev/pts/N: ttyname finds it in its view.
    let n = lines
        .first()
        .and_then(|l| l.strip_prefix("/dev/pts/"))
        .unwrap_or_else(|| panic!("tty printed no /dev/pts path: {shown:?}"));
    assert!(
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        "{shown:?}"
    );
    assert_eq!(
        &lines[1..],
        [
            "console-is-a-device",
            "console-is-the-tty",
            // Nothing of the host's devpts: only the container's one pty.
            &format!("pts: {n} ptmx"),
        ],
        "{shown:?}"
    );
}

#[test]
fn tty_needs_a_terminal_on_stdin() {
    let st = busybox();
    // `echo x | hutch run -it busybox cat` would wait forever for an
    // end-of-file nobody can type: refused before anything starts.
    let mut child = st
        .hutch()
        .args(["run", "--rm", "-it", "busybox", "true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"x\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the input device is not a TTY") && err.contains("drop -t"),
        "{err}"
    );
    // /dev/null on stdin: the same.
    let (c, err) = st.run_fail(["run", "--rm", "-t", "busybox", "true"]);
    assert_eq!(c, 125);
    assert!(err.contains("the input device is not a TTY"), "{err}");
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
    // Control: with a terminal on stdin, -t runs.
    let (code, shown) = on_terminal(&st, &["run", "--rm", "-t", "busybox", "echo", "ran"]);
    assert_eq!((code, shown.as_str()), (Some(0), "ran\n"));
}

#[test]
fn inspect_finds_containers_after_images() {
    let st = busybox();
    let (_, out) = st.run(["run", "--name", "box", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", "box"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "box", "{v:#}");
    assert_eq!(v["ImageName"], "busybox");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["Path"], "sh");
    assert_eq!(v["Args"], serde_json::json!(["-c", "exit 3"]));
    let id = v["Id"].as_str().unwrap();
    let by_id: serde_json::Value =
        serde_json::from_str(&st.run_ok(["inspect", &id[..12]])).unwrap();
    assert_eq!(by_id[0]["Id"], id);
    // Images come first, as in Podman: a container named like an image.
    st.run_ok(["run", "--name", "busybox", "busybox", "true"]);
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", "busybox"])).unwrap();
    assert!(
        v[0]["Digest"].is_string() && v[0].get("State").is_none(),
        "{v:#}"
    );
    let (c, err) = st.run_fail(["inspect", "nothing-here"]);
    assert_eq!(c, 125);
    assert!(
        err.contains("no image") && err.contains("no container is \"nothing-here\""),
        "{err}"
    );
}

#[test]
fn rm_all_removes_the_stopped_containers() {
    let st = busybox();
    st.run_ok(["run", "--name", "one", "busybox", "true"]);
    let (_, out) = st.run(["run", "--name", "two", "busybox", "false"]);
    assert_eq!(out.status.code(), Some(1));
    let mut child = st
        .hutch()
        .args(["run", "--name", "busy", "busybox", "sh", "-c"])
        .arg("echo ready; sleep 60")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(child.stdout.as_mut().unwrap(), "ready");
    let (_, out) = st.run(["rm", "-a"]);
    assert!(out.status.success(), "{}", describe(&out));
    let mut removed: Vec<String> = text(&out).lines().map(String::from).collect();
    removed.sort();
    assert_eq!(removed, ["one", "two"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("busy is running and is kept; `hutch rm -f busy`"),
        "{err}"
    );
    let ps = st.run_ok(["ps", "-a"]);
    assert!(
        ps.contains("busy") && !ps.contains("one") && !ps.contains("two"),
        "{ps}"
    );
    // With -f, running ones go too.
    assert_eq!(st.run_ok(["rm", "-a", "-f"]), "busy\n");
    assert!(!child.wait().unwrap().success());
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
    let (c, _) = st.run_fail(["rm", "-a", "one"]);
    assert_eq!(c, 125, "-a with names is a usage error");
}

#[test]
fn read_only_keeps_tmp_var_tmp_and_run_writable() {
    let st = busybox();
    let script = "for d in /tmp /var/tmp /run; do touch $d/f 2>/dev/null && echo $d-rw || echo $d-ro; done; \
                  touch /etc/f 2>/dev/null && echo etc-rw || echo etc-ro";
    let out = run_ok(&st, &["--read-only", "busybox", "sh", "-c", script]);
    assert_eq!(out, "/tmp-rw\n/var/tmp-rw\n/run-rw\netc-ro\n");
    let mounts = run_ok(&st, &["--read-only", "busybox", "cat", "/proc/mounts"]);
    for d in ["/tmp", "/var/tmp", "/run"] {
        assert!(
            mounts.contains(&format!(" {d} tmpfs rw,")),
            "{d} is a tmpfs: {mounts}"
        );
    }
    let out = run_ok(
        &st,
        &[
            "--read-only",
            "--read-only-tmpfs=false",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out, "/tmp-ro\n/var/tmp-ro\n/run-ro\netc-ro\n");
    // A --tmpfs of the user's replaces the default one.
    let out = run_ok(
        &st,
        &[
            "--read-only",
            "--tmpfs",
            "/tmp:size=1m",
            "busybox",
            "sh",
            "-c",
            "grep ' /tmp ' /proc/mounts | grep -c size=1024k",
        ],
    );
    assert_eq!(out, "1\n");
}

#[test]
fn the_cgroup_warning_is_shown_once() {
    let st = busybox();
    let untrusted = |extra: &[&str]| {
        st.hutch()
            .current_dir(st.tmp())
            .args(extra)
            .args(["run", "--rm", "--profile", "untrusted"])
            .args(["busybox", "true"])
            .output()
            .unwrap()
    };
    let warning = "hutch: warning: memory/pids/cpu limits not applied";
    let dry_run = || -> serde_json::Value {
        let out = st
            .hutch()
            .current_dir(st.tmp())
            .args([
                "run",
                "--dry-run",
                "--profile",
                "untrusted",
                "busybox",
                "true",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let falls_back = dry_run().get("cgroup_fallback").is_some();
    let first = untrusted(&[]);
    let second = untrusted(&[]);
    let verbose = untrusted(&["--verbose"]);
    for out in [&first, &second, &verbose] {
        assert!(out.status.success(), "{}", describe(out));
    }
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    if falls_back {
        assert!(
            err(&first).starts_with(warning) && err(&first).contains("(shown once;"),
            "{}",
            err(&first)
        );
        assert_eq!(err(&second), "", "the second run is quiet");
        assert!(
            err(&verbose).contains("memory/pids/cpu limits not applied"),
            "--verbose shows it: {}",
            err(&verbose)
        );
        // --dry-run still reports it.
        assert!(dry_run().get("cgroup_fallback").is_some());
    } else {
        // A delegated cgroup v2: the limits apply, nothing to warn about.
        for out in [&first, &second] {
            assert!(!err(out).contains(warning), "{}", err(out));
        }
    }
}

/// A new directory on another filesystem than `than` (a rename from
/// there to it fails with EXDEV, whatever the caller's capabilities).
fn dir_on_another_filesystem(than: &std::path::Path) -> tempfile::TempDir {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(than).unwrap().dev();
    ["/dev/shm", "/run/shm", "/var/tmp", "/tmp"]
        .iter()
        .filter(|c| std::fs::metadata(c).is_ok_and(|m| m.is_dir() && m.dev() != dev))
        .find_map(|c| {
            tempfile::Builder::new()
                .prefix("hutch-xdev-")
                .tempdir_in(c)
                .ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "this test needs a writable directory on another filesystem than {}",
                than.display()
            )
        })
}

#[test]
fn a_failed_cleanup_after_the_run_keeps_the_commands_status() {
    use std::os::unix::process::CommandExt;
    let st = busybox();
    let sync = st.tmp().join("sync");
    std::fs::create_dir(&sync).unwrap();
    let vol = format!("{}:/sync", sync.display());
    let mut cmd = st.hutch();
    cmd.args([
        "run", "--rm", "--name", "stuck", "-v", &vol, "busybox", "sh", "-c",
    ])
    .arg("echo ready; while [ ! -e /sync/go ]; do sleep 0.05; done; exit 3")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: only signal(2) between fork and exec. A write beyond
    // RLIMIT_FSIZE then fails with EFBIG instead of killing hutch.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    wait_for(child.stdout.as_mut().unwrap(), "ready");
    // As on a full disk, once the command runs: hutch can write no file
    // (so it cannot record the exit), and the store's tmp/ is on another
    // filesystem (so the container cannot be moved there to be removed).
    // hutch is root in its user namespace, so permissions would not stop it.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::prlimit(
        Some(pid),
        rustix::process::Resource::Fsize,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: None,
        },
    )
    .unwrap();
    let elsewhere = dir_on_another_filesystem(st.root());
    let tmp = st.root().join("tmp");
    std::fs::rename(&tmp, st.root().join("tmp.real")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &tmp).unwrap();
    std::fs::write(sync.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(st.root().join("tmp.real"), &tmp).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let dir = std::fs::read_dir(st.root().join("containers"))
        .unwrap()
        .next()
        .expect("the container is left")
        .unwrap()
        .path();
    assert!(
        err.contains("--rm: removing container stuck failed")
            && err.contains(&format!("it is left in {}", dir.display()))
            && err.contains("`hutch rm stuck` removes it"),
        "{err}"
    );
    // What it says works.
    assert_eq!(st.run_ok(["rm", "stuck"]), "stuck\n");
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}
