//! Whiteouts, opaque directories, owners, modes and special files.

use super::*;

// ---- whiteouts --------------------------------------------------------

fn is_whiteout_dev(p: &Path) -> bool {
    let m = std::fs::symlink_metadata(p).unwrap();
    m.file_type().is_char_device() && m.rdev() == 0
}

#[test]
fn unpack_whiteouts_and_opaque_dirs() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.file(".wh.gone", b"")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/kept", b"k")
        .file("sub/.wh.x", b"")
        .file("implicit/.wh..wh..opq", b"")
        .file(".wh..wh..opq", b"")
        .file("aufs/.wh..wh.plnk", b"")
        // Whiteout of a directory this layer made: it stays, opaque.
        .dir("mine/")
        .file("mine/f", b"f")
        .file(".wh.mine", b"")
        // Whiteout of a file of this layer: the file stays.
        .file("file", b"f")
        .file(".wh.file", b"")
        // A directory where this layer put a whiteout: opaque.
        .file(".wh.again", b"")
        .dir("again/")
        // A file where this layer put a whiteout: replaces it.
        .file(".wh.refile", b"")
        .file("refile", b"r");
    sb.unpack(&t.bytes()).unwrap();
    assert!(is_whiteout_dev(&sb.p("gone")));
    assert!(is_whiteout_dev(&sb.p("sub/x")));
    assert!(!sb.p(".wh.gone").exists());
    assert!(!sb.p("opq/.wh..wh..opq").exists());
    assert_eq!(
        xattr(&sb.p("opq"), "user.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(format::is_opaque(open_dir(&sb.p("opq"))).unwrap());
    assert!(format::is_opaque(open_dir(&sb.p("implicit"))).unwrap());
    assert!(format::is_opaque(open_dir(&sb.dest)).unwrap());
    assert!(!format::is_opaque(open_dir(&sb.p("sub"))).unwrap());
    assert!(!sb.p("aufs/.wh..wh.plnk").exists());
    assert_eq!(std::fs::read(sb.p("mine/f")).unwrap(), b"f");
    assert!(format::is_opaque(open_dir(&sb.p("mine"))).unwrap());
    assert_eq!(std::fs::read(sb.p("file")).unwrap(), b"f");
    assert!(std::fs::metadata(sb.p("again")).unwrap().is_dir());
    assert!(format::is_opaque(open_dir(&sb.p("again"))).unwrap());
    assert_eq!(std::fs::read(sb.p("refile")).unwrap(), b"r");
    sb.assert_outside_untouched();
}

#[test]
fn unpack_whiteout_file_fallback() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.file(".wh.gone", b"")
        .file("sub/.wh.x", b"")
        .dir("mine/")
        .file(".wh.mine", b"")
        .file(".wh.again", b"")
        .dir("again/")
        .file(".wh.refile", b"")
        .file("refile", b"r")
        .file(".wh.twice", b"")
        .file(".wh.twice", b"");
    unpack_with(&t.bytes()[..], &sb.dest, true).unwrap();
    for wh in [".wh.gone", "sub/.wh.x", ".wh.twice"] {
        let m = std::fs::symlink_metadata(sb.p(wh)).unwrap();
        assert!(m.file_type().is_file() && m.len() == 0, "{wh}");
    }
    assert!(!sb.p("gone").exists());
    assert!(format::is_opaque(open_dir(&sb.p("mine"))).unwrap());
    assert!(!sb.p(".wh.mine").exists());
    assert!(format::is_opaque(open_dir(&sb.p("again"))).unwrap());
    assert!(!sb.p(".wh.again").exists());
    assert_eq!(std::fs::read(sb.p("refile")).unwrap(), b"r");
    assert!(!sb.p(".wh.refile").exists());
    sb.assert_outside_untouched();
}

// ---- ownership, modes, special files ----------------------------------

#[test]
fn unpack_records_override_stat_for_owner() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"owned", EntryType::Regular, b"x", |h| {
        h.set_uid(42);
        h.set_gid(43);
    })
    .file("plain", b"p")
    .entry(b"private", EntryType::Regular, b"p", |h| h.set_mode(0o400))
    .entry(b"ro-dir/", EntryType::Directory, b"", |h| h.set_mode(0o555))
    .entry(b"odir/", EntryType::Directory, b"", |h| {
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mode(0o750);
    })
    .dir("./");
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(record(&sb.p("owned")), Some("42:43:0644:file".into()));
    assert_eq!(
        std::fs::metadata(sb.p("owned")).unwrap().uid(),
        rustix::process::getuid().as_raw()
    );
    assert_eq!(record(&sb.p("plain")), None);
    assert_eq!(record(&sb.p("private")), Some("0:0:0400:file".into()));
    assert_eq!(
        std::fs::metadata(sb.p("private"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600
    );
    assert_eq!(record(&sb.p("ro-dir")), Some("0:0:0555:dir".into()));
    assert_eq!(
        std::fs::metadata(sb.p("ro-dir"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(record(&sb.p("odir")), Some("1000:1000:0750:dir".into()));
    // The root always carries a record.
    assert_eq!(record(&sb.dest), Some("0:0:0755:dir".into()));
    sb.assert_outside_untouched();

    // Without a `./` entry too.
    let sb = sandbox();
    sb.unpack(&Tar::new().file("f", b"").bytes()).unwrap();
    assert_eq!(record(&sb.dest), Some("0:0:0755:dir".into()));
}

#[test]
fn unpack_setuid_recorded_not_set_on_disk() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"bin/su", EntryType::Regular, b"\x7fELF", |h| {
        h.set_mode(0o4755)
    })
    .entry(b"bin/wall", EntryType::Regular, b"\x7fELF", |h| {
        h.set_mode(0o2755);
        h.set_gid(5);
    })
    .entry(b"tmp/", EntryType::Directory, b"", |h| h.set_mode(0o1777));
    sb.unpack(&t.bytes()).unwrap();
    let m = std::fs::metadata(sb.p("bin/su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o7777, 0o755);
    assert_eq!(record(&sb.p("bin/su")), Some("0:0:4755:file".into()));
    assert_eq!(
        std::fs::metadata(sb.p("bin/wall"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7000,
        0
    );
    assert_eq!(record(&sb.p("bin/wall")), Some("0:5:2755:file".into()));
    assert_eq!(
        std::fs::metadata(sb.p("tmp")).unwrap().permissions().mode() & 0o7777,
        0o777
    );
    assert_eq!(record(&sb.p("tmp")), Some("0:0:1777:dir".into()));
}

#[test]
fn unpack_device_nodes_recorded() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"dev/null", EntryType::Char, b"", |h| {
        h.set_mode(0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    })
    .entry(b"dev/sda", EntryType::Block, b"", |h| {
        h.set_mode(0o660);
        h.set_gid(6);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
    })
    .entry(b"dev/zero-dev", EntryType::Char, b"", |h| {
        // A char device 0:0 in an image is a device, not a whiteout.
        h.set_mode(0o600);
        h.set_device_major(0).unwrap();
        h.set_device_minor(0).unwrap();
    });
    sb.unpack(&t.bytes()).unwrap();
    let m = std::fs::symlink_metadata(sb.p("dev/null")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(m.len(), 0);
    assert_eq!(record(&sb.p("dev/null")), Some("0:0:0666:char-1-3".into()));
    assert_eq!(record(&sb.p("dev/sda")), Some("0:6:0660:block-8-0".into()));
    assert!(
        std::fs::symlink_metadata(sb.p("dev/zero-dev"))
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(
        record(&sb.p("dev/zero-dev")),
        Some("0:0:0600:char-0-0".into())
    );
    let rec = format::OverrideStat::decode(record(&sb.p("dev/null")).unwrap().as_bytes()).unwrap();
    assert_eq!(rec.device(), Some((1, 3)));
}

#[test]
fn unpack_fifo_created() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"run/fifo", EntryType::Fifo, b"", |h| h.set_mode(0o620));
    sb.unpack(&t.bytes()).unwrap();
    let m = std::fs::symlink_metadata(sb.p("run/fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.permissions().mode() & 0o7777, 0o620);
    assert_eq!(m.mtime(), 1_600_000_000);
}

#[test]
fn unpack_hardlinks_share_inode() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"usr/bin/a", EntryType::Regular, b"same", |h| h.set_uid(7))
        .hardlink("usr/bin/b", "usr/bin/a")
        .hardlink("c", "./usr//bin/a")
        .hardlink("/d", "/usr/bin/a");
    let stats = sb.unpack(&t.bytes()).unwrap();
    assert_eq!(stats.file_bytes, 4);
    let ino = std::fs::metadata(sb.p("usr/bin/a")).unwrap().ino();
    for n in ["usr/bin/b", "c", "d"] {
        let m = std::fs::metadata(sb.p(n)).unwrap();
        assert_eq!(m.ino(), ino, "{n}");
        assert_eq!(m.nlink(), 4);
    }
    assert_eq!(record(&sb.p("d")), Some("7:0:0644:file".into()));
}

#[test]
fn unpack_symlinks_stored_verbatim() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.symlink("abs", "/etc/passwd")
        .symlink("rel", "../../../../etc/shadow")
        .symlink("dir/link", "target with spaces");
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(
        std::fs::read_link(sb.p("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(sb.p("rel")).unwrap(),
        Path::new("../../../../etc/shadow")
    );
    assert_eq!(
        std::fs::read_link(sb.p("dir/link")).unwrap(),
        Path::new("target with spaces")
    );
    let m = std::fs::symlink_metadata(sb.p("abs")).unwrap();
    assert_eq!(m.mtime(), 1_600_000_000);
    sb.assert_outside_untouched();
}

#[test]
fn unpack_mtimes_preserved() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"d/", EntryType::Directory, b"", |h| {
        h.set_mtime(1_000_000_000)
    })
    .entry(b"d/f", EntryType::Regular, b"data", |h| {
        h.set_mtime(1_100_000_000)
    })
    .entry(b"d/e/", EntryType::Directory, b"", |h| {
        h.set_mtime(1_200_000_000)
    })
    .file("d/e/g", b"g")
    .entry(b"./", EntryType::Directory, b"", |h| {
        h.set_mtime(900_000_000)
    });
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(std::fs::metadata(sb.p("d")).unwrap().mtime(), 1_000_000_000);
    assert_eq!(
        std::fs::metadata(sb.p("d/f")).unwrap().mtime(),
        1_100_000_000
    );
    assert_eq!(
        std::fs::metadata(sb.p("d/e")).unwrap().mtime(),
        1_200_000_000
    );
    assert_eq!(std::fs::metadata(&sb.dest).unwrap().mtime(), 900_000_000);
}
