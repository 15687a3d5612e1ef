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
