//! Tests of the host checks on fake hosts (tempdir-backed views).

use super::*;
use crate::host::CgroupView;
use crate::host::cgroup::parse_self_cgroup;
use crate::host::kernel::parse_kernel_version;
use std::fs;
use std::path::PathBuf;
use tempfile::TempDir;

/// The names of the checks, in the order `check_host_at` reports them.
const CHECKS: [&str; 8] = [
    "kernel", "userns", "fuse", "tun", "uidmap", "subids", "cgroup", "landlock",
];

/// A fake host where everything is fine; tests break one thing each.
struct Fake {
    dir: TempDir,
    view: HostView,
}

impl Fake {
    fn good() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let helper = |name: &str| Helper {
            path: PathBuf::from("/usr/bin").join(name),
            mode: 0o104755,
            owner: 0,
            file_caps: false,
            nosuid_mount: false,
        };
        let view = HostView {
            kernel_release: "6.8.0-45-generic".into(),
            uid: 1000,
            user_name: Some("alice".into()),
            exe: "/home/alice/.local/bin/hutch".into(),
            proc_sys: root.join("sys"),
            userns_probe: UsernsProbe::Works,
            dev_fuse: DevAccess::Ok,
            dev_net_tun: DevAccess::Ok,
            newuidmap: Some(helper("newuidmap")),
            newgidmap: Some(helper("newgidmap")),
            subuid_file: root.join("subuid"),
            subgid_file: root.join("subgid"),
            cgroup: CgroupView {
                unified: true,
                own_path: Some(
                    "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope".into(),
                ),
                own_writable: true,
                controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                    .map(String::from)
                    .to_vec(),
                user_service_writable: true,
            },
            landlock: LandlockSupport::Abi(4),
        };
        let fake = Fake { dir, view };
        fake.sysctl("user/max_user_namespaces", "63229");
        fake.write("subuid", "alice:100000:65536\nbob:165536:65536\n");
        fake.write("subgid", "alice:100000:65536\nbob:165536:65536\n");
        fake
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn sysctl(&self, name: &str, value: &str) {
        self.write(&format!("sys/{name}"), &format!("{value}\n"));
    }

    fn finding(&self, check: &str) -> Finding {
        let all = check_host_at(&self.view);
        all.into_iter().find(|f| f.check == check).unwrap()
    }
}

fn assert_fix(f: &Finding, status: Status, needle: &str) {
    assert_eq!(f.status, status, "{f:#?}");
    let fix = f.fix.as_deref().expect("a fix");
    assert!(fix.contains(needle), "fix lacks {needle:?}: {fix}");
}

#[test]
fn all_good() {
    let fake = Fake::good();
    let all = check_host_at(&fake.view);
    let names: Vec<_> = all.iter().map(|f| f.check).collect();
    assert_eq!(names, CHECKS);
    for f in &all {
        assert_eq!(f.status, Status::Ok, "{f:#?}");
        assert!(f.fix.is_none());
    }
    assert!(can_run(&all));
    assert!(all[0].detail.contains("6.8.0-45-generic"));
    assert!(all[5].detail.contains("100000-165535"), "{}", all[5].detail);
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_kernel_version("6.8.0-45-generic"), Some((6, 8)));
    assert_eq!(
        parse_kernel_version("5.15.167.4-microsoft-standard-WSL2"),
        Some((5, 15))
    );
    assert_eq!(parse_kernel_version("5.11"), Some((5, 11)));
    assert_eq!(parse_kernel_version("6.18.44-fc-v595"), Some((6, 18)));
    assert_eq!(parse_kernel_version("garbage"), None);

    let mut fake = Fake::good();
    fake.view.kernel_release = "5.10.0-28-amd64".into();
    let f = fake.finding("kernel");
    assert_fix(&f, Status::Fail, "sudo apt");
    assert!(f.detail.contains("5.10.0-28-amd64") && f.detail.contains("5.11"));
    assert!(!can_run(&check_host_at(&fake.view)));

    fake.view.kernel_release = "5.11.0".into();
    assert_eq!(fake.finding("kernel").status, Status::Ok);

    fake.view.kernel_release = "weird".into();
    assert_eq!(fake.finding("kernel").status, Status::Warn);
}

#[test]
fn userns_max_zero() {
    let mut fake = Fake::good();
    fake.sysctl("user/max_user_namespaces", "0");
    fake.view.userns_probe = UsernsProbe::Failed {
        step: "unshare(CLONE_NEWUSER)",
        error: "No space left on device".into(),
    };
    let f = fake.finding("userns");
    assert_fix(
        &f,
        Status::Fail,
        "sudo sysctl -w user.max_user_namespaces=28633",
    );
    assert_fix(&f, Status::Fail, "/etc/sysctl.d/");
    assert!(f.detail.contains("max_user_namespaces is 0"));
}

#[test]
fn userns_debian_clone_switch() {
    let fake = Fake::good();
    fake.sysctl("kernel/unprivileged_userns_clone", "0");
    let f = fake.finding("userns");
    assert_fix(
        &f,
        Status::Fail,
        "sudo sysctl -w kernel.unprivileged_userns_clone=1",
    );
    // Present and 1: fine.
    fake.sysctl("kernel/unprivileged_userns_clone", "1");
    assert_eq!(fake.finding("userns").status, Status::Ok);
}

#[test]
fn userns_apparmor_restriction() {
    let mut fake = Fake::good();
    fake.sysctl("kernel/apparmor_restrict_unprivileged_userns", "1");
    // A profile already allows us: the probe works, so this is fine.
    let f = fake.finding("userns");
    assert_eq!(f.status, Status::Ok);
    assert!(f.detail.contains("AppArmor"));

    fake.view.userns_probe = UsernsProbe::Failed {
        step: "unshare(CLONE_NEWNS) inside a new user namespace",
        error: "Operation not permitted".into(),
    };
    let f = fake.finding("userns");
    assert_fix(&f, Status::Fail, "/etc/apparmor.d/hutch");
    assert_fix(
        &f,
        Status::Fail,
        "sudo apparmor_parser -r /etc/apparmor.d/hutch",
    );
    assert_fix(
        &f,
        Status::Fail,
        "profile hutch /home/alice/.local/bin/hutch flags=(unconfined)",
    );
    assert_fix(&f, Status::Fail, "userns,");
    assert_fix(&f, Status::Fail, "abi <abi/4.0>,");
    assert_fix(
        &f,
        Status::Fail,
        "kernel.apparmor_restrict_unprivileged_userns=0",
    );
    // Every fix line is one shell command (no heredoc that indentation would break).
    assert!(!f.fix.unwrap().contains("<<"));
}

#[test]
fn userns_probe_fails_alone() {
    let mut fake = Fake::good();
    fake.view.userns_probe = UsernsProbe::Failed {
        step: "unshare(CLONE_NEWUSER)",
        error: "Operation not permitted".into(),
    };
    let f = fake.finding("userns");
    assert_fix(&f, Status::Fail, "unshare --user");
    assert!(f.detail.contains("Operation not permitted"));
}

#[test]
fn userns_as_root_warns() {
    let mut fake = Fake::good();
    fake.view.uid = 0;
    fake.view.user_name = Some("root".into());
    let f = fake.finding("userns");
    assert_fix(&f, Status::Warn, "normal");
    assert!(f.detail.contains("root"));
}

#[test]
fn fuse_failures() {
    let mut fake = Fake::good();
    fake.view.dev_fuse = DevAccess::Missing;
    let f = fake.finding("fuse");
    assert_fix(&f, Status::Fail, "sudo apt install fuse3");
    assert_fix(&f, Status::Fail, "sudo dnf install fuse3");
    assert_fix(&f, Status::Fail, "sudo modprobe fuse");

    fake.view.dev_fuse = DevAccess::NoDriver("No such device".into());
    assert_fix(&fake.finding("fuse"), Status::Fail, "sudo modprobe fuse");

    fake.view.dev_fuse = DevAccess::Denied("Permission denied".into());
    let f = fake.finding("fuse");
    assert_fix(&f, Status::Fail, "sudo chmod 0666 /dev/fuse");
    assert!(f.detail.contains("Permission denied"));
    assert!(!can_run(&check_host_at(&fake.view)));
}

#[test]
fn tun_is_needed_by_the_default_profile() {
    let mut fake = Fake::good();
    assert!(can_run(&check_host_at(&fake.view)));
    fake.view.dev_net_tun = DevAccess::Missing;
    assert_fix(&fake.finding("tun"), Status::Fail, "sudo modprobe tun");
    assert!(!can_run(&check_host_at(&fake.view)));
    fake.view.dev_net_tun = DevAccess::Denied("Permission denied".into());
    let f = fake.finding("tun");
    assert_fix(&f, Status::Fail, "sudo chmod 0666 /dev/net/tun");
    assert!(f.detail.contains("--network none"), "{}", f.detail);
    assert!(!can_run(&check_host_at(&fake.view)));
}

#[test]
fn uidmap_helpers() {
    let mut fake = Fake::good();
    fake.view.newuidmap = None;
    let f = fake.finding("uidmap");
    assert_fix(&f, Status::Warn, "sudo apt install uidmap");
    assert_fix(&f, Status::Warn, "sudo dnf install shadow-utils");
    assert!(f.detail.contains("newuidmap not found"));
    assert!(f.detail.contains("falls back"));

    // Fedora style: no setuid bit, file capabilities instead.
    let mut fake = Fake::good();
    for h in [&mut fake.view.newuidmap, &mut fake.view.newgidmap] {
        let h = h.as_mut().unwrap();
        h.mode = 0o100755;
        h.file_caps = true;
    }
    assert_eq!(fake.finding("uidmap").status, Status::Ok);

    // Neither setuid nor caps.
    fake.view.newgidmap.as_mut().unwrap().file_caps = false;
    let f = fake.finding("uidmap");
    assert_fix(
        &f,
        Status::Warn,
        "sudo setcap cap_setgid=ep /usr/bin/newgidmap",
    );

    // Setuid but owned by a normal user: useless.
    let mut fake = Fake::good();
    fake.view.newuidmap.as_mut().unwrap().owner = 1000;
    assert_fix(&fake.finding("uidmap"), Status::Warn, "cap_setuid=ep");

    // Setuid root on a nosuid mount: useless too.
    let mut fake = Fake::good();
    fake.view.newuidmap.as_mut().unwrap().nosuid_mount = true;
    assert_fix(&fake.finding("uidmap"), Status::Warn, "nosuid");
}

#[test]
fn helper_find_in_dirs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(b.join("newuidmap")).unwrap(); // a directory does not count
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("newuidmap"), "").unwrap();
    fs::set_permissions(a.join("newuidmap"), fs::Permissions::from_mode(0o755)).unwrap();
    let found = Helper::find("newuidmap", &[b.clone(), a.clone()]).unwrap();
    assert_eq!(found.path, a.join("newuidmap"));
    assert_eq!(found.mode & 0o7777, 0o755);
    assert!(!found.file_caps);
    assert!(Helper::find("newgidmap", &[a, b]).is_none());
}

#[test]
fn subids() {
    let mut fake = Fake::good();
    fake.write("subuid", "bob:100000:65536\n");
    let f = fake.finding("subids");
    assert_fix(
        &f,
        Status::Warn,
        "sudo usermod --add-subuids 231072-296607 --add-subgids 231072-296607 alice",
    );
    assert!(f.detail.contains("no range for alice"), "{}", f.detail);

    // Too small a range.
    fake.write("subuid", "alice:100000:1000\n");
    let f = fake.finding("subids");
    assert_fix(&f, Status::Warn, "sudo usermod --add-subuids");
    assert!(f.detail.contains("only 1000 ids"));

    // Numeric uid entries count; comments and junk are skipped.
    fake.write("subuid", "# comment\njunk\n1000:300000:65536\n");
    assert_eq!(fake.finding("subids").status, Status::Ok);

    // Missing file, empty system: suggest the first conventional range.
    fs::remove_file(&fake.view.subuid_file).unwrap();
    fs::remove_file(&fake.view.subgid_file).unwrap();
    let f = fake.finding("subids");
    assert_fix(
        &f,
        Status::Warn,
        "--add-subuids 100000-165535 --add-subgids 100000-165535 alice",
    );

    // A uid without a name gets a line to append.
    fake.view.user_name = None;
    assert_fix(
        &fake.finding("subids"),
        Status::Warn,
        "echo '1000:100000:65536'",
    );
}

#[test]
fn cgroup_cases() {
    assert_eq!(
        parse_self_cgroup("12:pids:/x\n0::/user.slice/a.scope\n").as_deref(),
        Some("/user.slice/a.scope")
    );
    assert_eq!(parse_self_cgroup("4:memory:/x\n"), None);

    let mut fake = Fake::good();
    fake.view.cgroup.controllers.retain(|c| c != "memory");
    let f = fake.finding("cgroup");
    assert_fix(&f, Status::Warn, "Delegate=cpu cpuset io memory pids");
    assert!(f.detail.contains("memory"));

    fake.view.cgroup.own_writable = false;
    fake.view.cgroup.own_path = Some("/user.slice/user-1000.slice/session-2.scope".into());
    assert_fix(
        &fake.finding("cgroup"),
        Status::Warn,
        "systemd-run --user --scope",
    );
    fake.view.cgroup.user_service_writable = false;
    assert_fix(
        &fake.finding("cgroup"),
        Status::Warn,
        "loginctl enable-linger alice",
    );

    fake.view.cgroup = CgroupView::default();
    let f = fake.finding("cgroup");
    assert_fix(&f, Status::Warn, "systemd.unified_cgroup_hierarchy=1");
    assert!(can_run(&check_host_at(&fake.view)));
}

#[test]
fn landlock_cases() {
    let mut fake = Fake::good();
    let f = fake.finding("landlock");
    assert_eq!(f.status, Status::Ok, "{f:#?}");
    assert!(f.detail.contains("ABI 4"), "{}", f.detail);

    fake.view.landlock = LandlockSupport::NotEnabled;
    let f = fake.finding("landlock");
    assert_fix(&f, Status::Warn, "lsm=landlock");
    assert!(f.detail.contains("not enabled"), "{}", f.detail);
    assert!(f.detail.contains("untrusted"), "{}", f.detail);

    fake.view.landlock = LandlockSupport::Missing(libc::ENOSYS);
    let f = fake.finding("landlock");
    assert_eq!(f.status, Status::Warn);
    assert!(
        f.detail.contains("CONFIG_SECURITY_LANDLOCK"),
        "{}",
        f.detail
    );
    // Path rules missing limit one profile feature; containers still run.
    assert!(can_run(&check_host_at(&fake.view)));
}

#[test]
fn render_lists_every_check_and_fix() {
    let mut fake = Fake::good();
    fake.view.dev_fuse = DevAccess::Denied("Permission denied".into());
    fake.view.newuidmap = None;
    let all = check_host_at(&fake.view);
    let text = render(&all);
    for name in CHECKS {
        assert!(
            text.lines().any(|l| l.contains(name)),
            "{name} missing:\n{text}"
        );
    }
    assert!(text.contains("[FAIL] fuse"));
    assert!(text.contains("[ ok ] kernel"));
    assert!(text.contains("[warn] uidmap"));
    let fix_line = text
        .lines()
        .find(|l| l.contains("fix: sudo chmod 0666 /dev/fuse"));
    assert!(fix_line.is_some_and(|l| l.starts_with("  ")), "{text}");
    assert!(!can_run(&all));
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        CHECKS.len()
    );
}

#[test]
fn findings_serialise() {
    let f = Finding::bad("fuse", Status::Fail, "x", "y".into());
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["check"], "fuse");
}

#[test]
fn sh_quoting() {
    assert_eq!(sh_quote("alice"), "alice");
    assert_eq!(sh_quote("it's"), r"'it'\''s'");
    assert_eq!(sh_quote("a b"), "'a b'");
}

#[test]
fn real_host_does_not_panic() {
    let all = check_host();
    let names: Vec<_> = all.iter().map(|f| f.check).collect();
    assert_eq!(names, CHECKS);
    let text = render(&all);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        CHECKS.len()
    );
    eprintln!("{text}");
}
