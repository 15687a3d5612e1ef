//! The stack's thread: stopping it, and its end when the TAP closes.

use super::*;

#[test]
fn stop_ends_thread_and_closes_everything() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:80")).unwrap();
    let (a, b) = pair();
    let handle = spawn(
        a,
        NetConfig {
            forwards: vec![fwd],
            ..test_cfg()
        },
    )
    .unwrap();
    let task = format!("/proc/self/task/{}", handle.thread_id());
    assert!(std::path::Path::new(&task).exists());
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_ok());
    handle.stop().unwrap();
    assert!(
        !std::path::Path::new(&task).exists(),
        "network thread still there"
    );
    // The TAP end is closed (the peer reads EOF) and the listener is gone.
    // (Frames the stack sent before it stopped come first.)
    let mut buf = vec![0u8; 70000];
    let end = StdInstant::now() + Duration::from_secs(5);
    loop {
        assert!(StdInstant::now() < end, "TAP end still open");
        match rustix::io::read(&b, &mut buf[..]) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_err());
}

#[test]
fn stack_ends_when_tap_closes() {
    let (a, b) = pair();
    let handle = spawn(a, test_cfg()).unwrap();
    drop(b);
    let end = StdInstant::now() + Duration::from_secs(5);
    while handle.is_running() && StdInstant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!handle.is_running());
    handle.stop().unwrap();
}
