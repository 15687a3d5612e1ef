//! Hostile paths (`..`, absolute names, links out of the layer) and
//! duplicate entries.

use super::*;

// ---- path attacks -----------------------------------------------------

#[test]
fn unpack_refuses_dotdot_entry() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.file("ok", b"1").file("../x", b"evil");
    let msg = assert_refused(
        sb.unpack(&t.bytes()),
        &["\"../x\"", "leaves the layer root"],
    );
    assert_eq!(msg, "layer entry \"../x\": path leaves the layer root");
    assert!(!sb.base.join("x").exists());
    sb.assert_outside_untouched();

    let sb = sandbox();
    let mut t = Tar::new();
    t.file("../outside/sentinel", b"evil");
    assert_refused(sb.unpack(&t.bytes()), &["../outside/sentinel"]);
    sb.assert_outside_untouched();
}

#[test]
fn unpack_refuses_nested_dotdot() {
    for name in ["a/../../x", "a/b/../../../x", "./a/..", "a/.."] {
        let sb = sandbox();
        let mut t = Tar::new();
        t.dir("a/").file(name, b"evil");
        assert_refused(sb.unpack(&t.bytes()), &[name, "leaves the layer root"]);
        assert!(!sb.base.join("x").exists());
        sb.assert_outside_untouched();
    }
    // A whiteout of `..`
    let sb = sandbox();
    let mut t = Tar::new();
    t.file("a/.wh...", b"");
    assert_refused(
        sb.unpack(&t.bytes()),
        &["a/.wh...", "leaves the layer root"],
    );
    sb.assert_outside_untouched();
}

#[test]
fn unpack_neutralises_absolute_paths() {
    let sb = sandbox();
    let abs_outside = format!("{}/abs", sb.outside.display());
    let mut t = Tar::new();
    t.file("/etc/hostname", b"h")
        .file(&abs_outside, b"inside")
        .file("./rel", b"r")
        .file("//double//slash/./x", b"d")
        .dir("/");
    let stats = sb.unpack(&t.bytes()).unwrap();
    assert_eq!(stats.entries, 5);
    assert_eq!(std::fs::read(sb.p("etc/hostname")).unwrap(), b"h");
    assert_eq!(std::fs::read(sb.p("rel")).unwrap(), b"r");
    assert_eq!(std::fs::read(sb.p("double/slash/x")).unwrap(), b"d");
    let landed = sb.dest.join(abs_outside.trim_start_matches('/'));
    assert_eq!(std::fs::read(landed).unwrap(), b"inside");
    assert!(!sb.outside.join("abs").exists());
    sb.assert_outside_untouched();
}

#[test]
fn unpack_refuses_write_through_absolute_symlink() {
    let sb = sandbox();
    let target = sb.outside.display().to_string();
    let mut t = Tar::new();
    t.symlink("evil", &target).file("evil/x", b"evil");
    assert_refused(sb.unpack(&t.bytes()), &["\"evil/x\"", "symlink"]);
    assert!(!sb.outside.join("x").exists());
    // The symlink itself is stored verbatim.
    assert_eq!(std::fs::read_link(sb.p("evil")).unwrap(), sb.outside);
    sb.assert_outside_untouched();

    // Also /tmp-style absolute targets, deeper paths and directories.
    for second in ["evil/sub/x", "evil/sub/"] {
        let sb = sandbox();
        let mut t = Tar::new();
        t.symlink("evil", &target);
        if second.ends_with('/') {
            t.dir(second);
        } else {
            t.file(second, b"evil");
        }
        assert_refused(sb.unpack(&t.bytes()), &[second, "symlink"]);
        assert!(!sb.outside.join("sub").exists());
        sb.assert_outside_untouched();
    }
}

#[test]
fn unpack_refuses_write_through_dotdot_symlink() {
    for (link, target) in [("up", ".."), ("d/up", "../.."), ("d/up", "../../outside")] {
        let sb = sandbox();
        let through = format!("{link}/x");
        let mut t = Tar::new();
        t.dir("d/").symlink(link, target).file(&through, b"evil");
        assert_refused(sb.unpack(&t.bytes()), &[&through, "symlink"]);
        assert!(!sb.base.join("x").exists());
        assert!(!sb.outside.join("x").exists());
        sb.assert_outside_untouched();
    }
}

#[test]
fn unpack_refuses_hardlink_escape() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.hardlink("h", "../../etc/passwd");
    let msg = assert_refused(
        sb.unpack(&t.bytes()),
        &["\"h\"", "../../etc/passwd", "leaves"],
    );
    assert!(msg.contains("hard link"), "{msg}");
    assert!(!sb.p("h").exists());
    sb.assert_outside_untouched();

    // An absolute target names a path inside the layer, which does not exist.
    let sb = sandbox();
    let abs = format!("{}/etc/passwd", sb.outside.display());
    let mut t = Tar::new();
    t.hardlink("h", &abs);
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", &abs, "does not exist"]);
    assert!(!sb.p("h").exists());
    assert_eq!(
        std::fs::metadata(sb.outside.join("etc/passwd"))
            .unwrap()
            .nlink(),
        1
    );
    sb.assert_outside_untouched();

    let sb = sandbox();
    let mut t = Tar::new();
    t.hardlink("h", "/etc/passwd");
    assert_refused(
        sb.unpack(&t.bytes()),
        &["\"h\"", "/etc/passwd", "does not exist"],
    );
    sb.assert_outside_untouched();

    // Links to directories, the root and whiteouts are refused too.
    let sb = sandbox();
    let mut t = Tar::new();
    t.dir("d/").hardlink("h", "d");
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "\"d\"", "directory"]);
    let sb = sandbox();
    let mut t = Tar::new();
    t.hardlink("h", "./");
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "root"]);
    let sb = sandbox();
    let mut t = Tar::new();
    t.file(".wh.gone", b"").hardlink("h", "gone");
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "whiteout"]);
}

#[test]
fn unpack_refuses_hardlink_through_symlink() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.symlink("lnk", &sb.outside.display().to_string())
        .hardlink("h", "lnk/sentinel");
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "lnk/sentinel", "symlink"]);
    assert!(!sb.p("h").exists());
    assert_eq!(
        std::fs::metadata(sb.outside.join("sentinel"))
            .unwrap()
            .nlink(),
        1
    );
    sb.assert_outside_untouched();

    // Through a relative symlink inside the layer as well.
    let sb = sandbox();
    let mut t = Tar::new();
    t.dir("real/")
        .file("real/f", b"x")
        .symlink("alias", "real")
        .hardlink("h", "alias/f");
    assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "alias/f", "symlink"]);
    sb.assert_outside_untouched();

    // A hard link to a symlink links the symlink itself, never its target.
    let sb = sandbox();
    let mut t = Tar::new();
    t.symlink("s", &sb.outside.join("sentinel").display().to_string())
        .hardlink("h", "s");
    sb.unpack(&t.bytes()).unwrap();
    assert!(
        std::fs::symlink_metadata(sb.p("h"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::metadata(sb.outside.join("sentinel"))
            .unwrap()
            .nlink(),
        1
    );
    sb.assert_outside_untouched();
}

#[test]
fn unpack_refuses_parent_that_is_a_file_or_whiteout_name() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.file("f", b"x").file("f/x", b"y");
    assert_refused(sb.unpack(&t.bytes()), &["\"f/x\"", "not a directory"]);

    let sb = sandbox();
    let mut t = Tar::new();
    t.file("a/.wh.b/c", b"y");
    assert_refused(sb.unpack(&t.bytes()), &["a/.wh.b/c", "whiteout"]);

    let sb = sandbox();
    let mut t = Tar::new();
    t.file("a/.wh.", b"");
    assert_refused(sb.unpack(&t.bytes()), &["a/.wh.", "whiteout"]);
}

// ---- duplicates -------------------------------------------------------

#[test]
fn unpack_duplicate_entries_later_wins() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.file("a", b"one")
        .file("a", b"two")
        .symlink("s", "nowhere")
        .file("s", b"file now")
        .file("l", b"file")
        .symlink("l", "target")
        .file("orig", b"orig")
        .hardlink("hl", "orig")
        .file("orig", b"new orig")
        .hardlink("hl", "orig")
        .hardlink("hl", "orig")
        .entry(b"m", EntryType::Regular, b"m", |h| h.set_uid(5))
        .file("m", b"m2")
        .dir("d/")
        .entry(b"d/", EntryType::Directory, b"", |h| h.set_mode(0o700))
        .entry(b"d2/", EntryType::Directory, b"", |h| h.set_mode(0o500))
        .dir("d2/")
        .entry(b"e/", EntryType::Directory, b"", |h| h.set_uid(9))
        .dir("e/");
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(std::fs::read(sb.p("a")).unwrap(), b"two");
    assert_eq!(std::fs::read(sb.p("s")).unwrap(), b"file now");
    assert_eq!(std::fs::read_link(sb.p("l")).unwrap(), Path::new("target"));
    assert_eq!(std::fs::read(sb.p("orig")).unwrap(), b"new orig");
    assert_eq!(std::fs::read(sb.p("hl")).unwrap(), b"new orig");
    assert_eq!(
        std::fs::metadata(sb.p("hl")).unwrap().ino(),
        std::fs::metadata(sb.p("orig")).unwrap().ino()
    );
    // The later entry's attributes win, including dropping a record.
    assert_eq!(record(&sb.p("m")), None);
    assert_eq!(
        std::fs::metadata(sb.p("d")).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(record(&sb.p("d")), None);
    assert_eq!(record(&sb.p("e")), None);
    assert_eq!(record(&sb.p("d2")), None);
    assert_eq!(
        std::fs::metadata(sb.p("d2")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    sb.assert_outside_untouched();
}

#[test]
fn unpack_file_replaces_dir_and_dir_replaces_file() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.dir("d/")
        .file("d/x", b"x")
        .dir("d/sub/")
        .file("d/sub/y", b"y")
        // A symlink inside the doomed tree must not be followed.
        .symlink("d/sub/escape", &sb.outside.display().to_string())
        .file("d", b"now a file")
        .file("f", b"a file")
        .dir("f/")
        .file("f/y", b"in dir");
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(std::fs::read(sb.p("d")).unwrap(), b"now a file");
    assert!(std::fs::metadata(sb.p("f")).unwrap().is_dir());
    assert_eq!(std::fs::read(sb.p("f/y")).unwrap(), b"in dir");
    assert!(sb.outside.join("sentinel").exists());
    sb.assert_outside_untouched();

    // The parent fd cache must not keep writing into a removed directory.
    let sb = sandbox();
    let mut t = Tar::new();
    t.dir("a/")
        .dir("a/b/")
        .file("a/b/1", b"1")
        .file("a", b"file")
        .dir("a/")
        .dir("a/b/")
        .file("a/b/2", b"2");
    sb.unpack(&t.bytes()).unwrap();
    assert!(!sb.p("a/b/1").exists());
    assert_eq!(std::fs::read(sb.p("a/b/2")).unwrap(), b"2");
}

#[test]
fn unpack_replaces_deep_tree_and_refuses_overlong_paths() {
    let sb = sandbox();
    let deep = "d/".repeat(600);
    let mut t = Tar::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, format!("{deep}leaf"), &b"x"[..])
        .unwrap();
    t.data = b.into_inner().unwrap();
    t.data.truncate(t.data.len() - 1024);
    t.file("d", b"flat");
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(std::fs::read(sb.p("d")).unwrap(), b"flat");

    // A parent path longer than PATH_MAX is refused with an error.
    let sb = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, format!("{}leaf", "d/".repeat(3000)), &b"x"[..])
        .unwrap();
    let err = sb.unpack(&b.into_inner().unwrap()[..]).unwrap_err();
    assert!(err.to_string().contains("leaf"), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn unpack_blank_numeric_fields_are_zero() {
    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"f", EntryType::Regular, b"x", |h| {
        let o = h.as_old_mut();
        o.uid = [0; 8];
        o.gid = [b' '; 8];
        o.mtime = [0; 12];
    });
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(record(&sb.p("f")), None);
    assert_eq!(std::fs::metadata(sb.p("f")).unwrap().mtime(), 0);

    let sb = sandbox();
    let mut t = Tar::new();
    t.entry(b"f", EntryType::Regular, b"x", |h| {
        h.as_old_mut().uid = *b"12x4567\0";
    });
    assert_refused(sb.unpack(&t.bytes()), &["\"f\"", "uid"]);
}
