//! A first image without a registry: scripts/busybox-image.sh builds a
//! root filesystem from the host's static busybox and imports it, as the
//! README tells a new user to; then the README's `busybox httpd` example
//! runs as written (on a free port instead of 8080).

mod common;

use common::{TestStore, describe, http_get_until};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

const SCRIPT: &str = include_str!("../scripts/busybox-image.sh");

fn import_first_image(st: &TestStore) -> std::process::Output {
    let script = st.tmp().join("busybox-image.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    st.command("bash")
        .arg(&script)
        .env("HUTCH", common::hutch_bin())
        .output()
        .unwrap()
}

#[test]
fn the_first_image_needs_no_registry_and_serves_the_readme_example() {
    let st = TestStore::new();
    let out = import_first_image(&st);
    assert!(out.status.success(), "{}", describe(&out));
    let images = st.run_ok(["images"]);
    assert!(images.contains("localhost/busybox"), "{images}");
    // Every applet is there (httpd is not in the test fixtures' busybox).
    let which = st.run_offline("busybox", &["sh", "-c", "which httpd wget vi; whoami"]);
    assert_eq!(
        which, "/usr/sbin/httpd\n/usr/bin/wget\n/bin/vi\nroot\n",
        "{which}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The README's commands, with this port for 8080.
    let publish = format!("{port}:80");
    let mut child = st
        .hutch()
        .args([
            "run",
            "--rm",
            "-p",
            &publish,
            "busybox",
            "sh",
            "-c",
            "echo hello > /tmp/index.html; httpd -f -p 80 -h /tmp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = match http_get_until(port, "/", Duration::from_secs(30), |v| v.contains("hello")) {
        Ok(body) => body,
        Err(e) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("no answer through -p {publish}: {e}\n{}", describe(&out));
        }
    };
    assert!(
        body.starts_with("HTTP/1.") && body.ends_with("hello\n"),
        "{body}"
    );
    // SIGTERM reaches httpd, which exits; --rm removes the container.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", describe(&out));
    assert!(!st.run_ok(["ps", "-a"]).contains("busybox"));
}

#[test]
fn the_first_image_script_says_what_is_missing() {
    let st = TestStore::new();
    // Control: a dynamically linked program in place of the static busybox.
    let script = st.tmp().join("busybox-image.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = st
        .command("bash")
        .arg(&script)
        .env("HUTCH", common::hutch_bin())
        .env("BUSYBOX", "/bin/true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt install busybox-static"), "{err}");
    assert!(
        !st.run_ok(["images"]).contains("busybox"),
        "nothing imported"
    );
    let out = st
        .command("bash")
        .arg(&script)
        .env("HUTCH", "/nonexistent/hutch")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hutch"),
        "{}",
        describe(&out)
    );
    assert!(!st.run_ok(["images"]).contains("busybox"));
}
