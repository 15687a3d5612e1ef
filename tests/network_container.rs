//! `--network container:NAME`: a container that shares a running
//! container's network (Podman's pod model), so an app reaches a service
//! on localhost; and the runs it refuses.

mod common;

use common::{busybox, http_get_until};
use std::time::Duration;

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SERVE: &str =
    "mkdir -p /www; echo hello-from-db > /www/index.html; exec httpd -f -p 8080 -h /www";

#[test]
fn a_service_is_reached_from_the_host_and_from_a_container_sharing_its_network() {
    let st = busybox();
    let port = free_port();
    st.run_ok([
        "run",
        "-d",
        "--name",
        "db",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    // From the host, through the published port.
    let got = http_get_until(port, "/", Duration::from_secs(20), |v| {
        v.contains("hello-from-db")
    });
    assert!(got.is_ok(), "{got:?}");
    // From a second container, on localhost: the same network namespace.
    let out = st.run_ok([
        "run",
        "--rm",
        "--network",
        "container:db",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://localhost:8080/; readlink /proc/self/ns/net; cat /etc/resolv.conf",
    ]);
    let db_net = st.run_ok(["exec", "db", "readlink", "/proc/self/ns/net"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello-from-db", "{out}");
    assert_eq!(lines[1], db_net.trim(), "{out}");
    assert_eq!(lines[2], "nameserver 10.0.2.3", "db's DNS forwarder");
    // Its own mount namespace and hostname, though.
    let out = st.run_ok([
        "run",
        "--rm",
        "--name",
        "app",
        "--network",
        "container:db",
        "busybox",
        "sh",
        "-c",
        "hostname; test -e /www/index.html && echo sees-db-files || echo own-files",
    ]);
    assert_eq!(out, "app\nown-files\n");
    // Control: a container of its own cannot reach db on localhost.
    let out = st.run_ok([
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "wget -T 5 -qO- http://localhost:8080/ 2>/dev/null || echo unreachable",
    ]);
    assert_eq!(out, "unreachable\n");
}

#[test]
fn runs_that_cannot_share_a_network_are_refused() {
    let st = busybox();
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"nosuch\""), "{err}");
    let (code, err) = st.run_fail(["run", "--rm", "--network", "container:", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("name the container"), "{err}");
    st.run_ok(["run", "-d", "--name", "svc", "busybox", "sleep", "100000"]);
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "-p",
        "8080",
        "--network",
        "container:svc",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("publish the ports when starting svc"), "{err}");
    // The untrusted profile locks its network: another's is refused.
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "--profile",
        "untrusted",
        "--network",
        "container:svc",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("--network container:svc"), "{err}");
    // A container on the host's network has none of its own to share.
    st.run_ok([
        "run",
        "-d",
        "--name",
        "onhost",
        "--network",
        "host",
        "busybox",
        "sleep",
        "100000",
    ]);
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "container:onhost",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("uses the host's network"), "{err}");
    // A stopped container: how to start it. Nothing was left behind.
    st.run_ok(["stop", "-t", "1", "svc"]);
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "container:svc",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("hutch start svc"), "{err}");
    let all = st.run_ok(["ps", "-a", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
}

/// A container joining another's network takes its id maps (it joins the
/// user namespace that owns that network): root of the default profile
/// joins a `dev` (keep-id) container; a user the joined container does
/// not map is refused by name.
#[test]
fn a_joining_container_takes_the_joined_ones_id_maps() {
    let st = busybox();
    let me = rustix::process::getuid().as_raw();
    st.run_ok([
        "run",
        "-d",
        "--name",
        "mine",
        "--profile",
        "dev",
        "busybox",
        "sleep",
        "100000",
    ]);
    let ids = st.run_ok([
        "run",
        "--rm",
        "--network",
        "container:mine",
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let mine = st.run_ok(["exec", "mine", "cat", "/proc/self/uid_map"]);
    let mut lines = ids.lines();
    assert_eq!(lines.next(), Some("0"), "{ids}");
    let joined: Vec<&str> = lines.collect();
    assert_eq!(joined, mine.lines().collect::<Vec<_>>(), "{ids}\n{mine}");
    assert!(
        mine.split_whitespace()
            .collect::<Vec<_>>()
            .chunks(3)
            .any(|m| m[0] == me.to_string() && m[1] == me.to_string()),
        "{mine}"
    );

    // With a one-id map (root inside is the user, nothing else is
    // mapped), another user cannot join.
    let out = st
        .hutch()
        .env("HUTCH_IDMAP", "single")
        .args([
            "run", "-d", "--name", "single", "busybox", "sleep", "100000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "-u",
        "1234:1234",
        "--network",
        "container:single",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("the user 1234:1234 is not mapped in single's user namespace"),
        "{err}"
    );
    // Control: as root, which it maps, the same run works.
    let out = st.run_ok([
        "run",
        "--rm",
        "--network",
        "container:single",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    let map: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(map, ["0", me.to_string().as_str(), "1"], "{out}");
}

/// `--add-host NAME:IP` adds a line to the container's /etc/hosts; a bad
/// value is refused before anything is made.
#[test]
fn add_host_lines_reach_etc_hosts() {
    let st = busybox();
    let hosts = st.run_ok([
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6:[fd00::1]",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.lines().any(|l| l == "10.1.2.3\tdb"), "{hosts}");
    assert!(hosts.lines().any(|l| l == "fd00::1\tv6"), "{hosts}");
    let (code, err) = st.run_fail(["run", "--rm", "--add-host", "db", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("--add-host \"db\"") && err.contains("NAME:IP"),
        "{err}"
    );
    let all = st.run_ok(["ps", "-aq"]);
    assert!(all.trim().is_empty(), "{all}");
}
