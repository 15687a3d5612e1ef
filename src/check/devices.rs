//! The device checks: /dev/fuse (the overlay) and /dev/net/tun (the
//! slirp network).

use super::{Finding, Status};
use crate::host::HostView;
use crate::host::probes::DevAccess;

pub(super) fn check_fuse(h: &HostView) -> Finding {
    const C: &str = "fuse";
    let install = [
        "sudo modprobe fuse && echo fuse | sudo tee /etc/modules-load.d/fuse.conf",
        "sudo apt install fuse3      # Debian/Ubuntu",
        "sudo dnf install fuse3      # Fedora",
        "sudo pacman -S fuse3        # Arch",
        "# in a container: start it with --device /dev/fuse",
    ];
    let chmod = [
        "sudo chmod 0666 /dev/fuse",
        "echo 'KERNEL==\"fuse\", MODE=\"0666\"' | sudo tee /etc/udev/rules.d/60-hutch-fuse.rules   # keep it after reboot",
    ];
    let why = "hutch serves image layers through its own FUSE overlay";
    match &h.dev_fuse {
        DevAccess::Ok => Finding::ok(C, "/dev/fuse exists and opens read-write"),
        DevAccess::Missing => Finding::bad(
            C,
            Status::Fail,
            format!("/dev/fuse does not exist; {why}"),
            install.join("\n"),
        ),
        DevAccess::NoDriver(e) => Finding::bad(
            C,
            Status::Fail,
            format!(
                "/dev/fuse exists but opening it failed ({e}): the fuse module is not loaded; {why}"
            ),
            install.join("\n"),
        ),
        DevAccess::Denied(e) => Finding::bad(
            C,
            Status::Fail,
            format!("/dev/fuse cannot be opened read-write by this user ({e}); {why}"),
            chmod.join("\n"),
        ),
        DevAccess::Error(e) => Finding::bad(
            C,
            Status::Fail,
            format!("opening /dev/fuse read-write failed: {e}; {why}"),
            [&chmod[..1], &install[..]].concat().join("\n"),
        ),
    }
}

pub(super) fn check_tun(h: &HostView) -> Finding {
    const C: &str = "tun";
    let why = "the default profile's network (--network slirp, also dev's and install's) \
               needs it; until it is fixed only --network none or --network host work";
    let modprobe = "sudo modprobe tun && echo tun | sudo tee /etc/modules-load.d/tun.conf";
    let chmod = "sudo chmod 0666 /dev/net/tun";
    let (detail, fix) = match &h.dev_net_tun {
        DevAccess::Ok => return Finding::ok(C, "/dev/net/tun exists and opens read-write"),
        DevAccess::Missing => (
            "/dev/net/tun does not exist".to_string(),
            modprobe.to_string(),
        ),
        DevAccess::NoDriver(e) => (
            format!("/dev/net/tun exists but the tun module is not loaded ({e})"),
            modprobe.to_string(),
        ),
        DevAccess::Denied(e) => (
            format!("/dev/net/tun cannot be opened read-write by this user ({e})"),
            chmod.to_string(),
        ),
        DevAccess::Error(e) => (
            format!("opening /dev/net/tun read-write failed: {e}"),
            format!("{modprobe}\n{chmod}"),
        ),
    };
    Finding::bad(
        C,
        Status::Fail,
        format!("{detail}; {why}"),
        format!("{fix}\n# in a container: start it with --device /dev/net/tun"),
    )
}
