//! Unit tests of the COPY layer: Docker's destination rules, headers,
//! reproducibility, and files read without following symlinks.

use super::plan::destination;
use super::write::Checked;
use super::*;
use crate::build::context::ignore::Ignore;
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tar::EntryType;

fn no_rules() -> Ignore {
    Ignore::parse("", None).expect("empty rules parse")
}

fn write(p: &Path, data: &str, mode: u32, mtime: i64) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime);
}

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn dir(p: &Path, mode: u32, mtime: i64) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime);
}

/// The layer of `sources` (context-relative) copied to `dest`.
fn layer(
    root: &Path,
    sources: &[&str],
    dest: &str,
    workdir: &str,
    options: &CopyOptions,
) -> Result<(Vec<u8>, CopyLayer), String> {
    let ctx = Context::open(root).unwrap();
    let sels: Vec<Selection> = sources
        .iter()
        .map(|s| ctx.select(s, &no_rules()).unwrap())
        .collect();
    write_copy_layer(&ctx, &sels, dest, workdir, options, Vec::new())
}

/// `type uid:gid mode mtime path [-> target] ["data"]` per entry.
fn listing(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        assert_eq!(h.username_bytes(), Some(&b""[..]), "no user names");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "no group names");
        let t = match h.entry_type() {
            EntryType::Regular => "f",
            EntryType::Directory => "d",
            EntryType::Symlink => "l",
            EntryType::Fifo => "p",
            _ => "?",
        };
        let mut line = format!(
            "{t} {}:{} {:04o} {} {}",
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
            h.mtime().unwrap(),
            String::from_utf8_lossy(&e.path_bytes())
        );
        if let Some(l) = e.link_name_bytes() {
            line.push_str(&format!(" -> {}", String::from_utf8_lossy(&l)));
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if !data.is_empty() {
            line.push_str(&format!(" {:?}", String::from_utf8_lossy(&data)));
        }
        out.push(line);
    }
    out
}

/// A small context: `app/` (0750) with `a` (0644) and `sub/b` (0600),
/// and `top` (0755), every time 1000.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let c = d.path();
    write(&c.join("app/a"), "A", 0o644, 1000);
    write(&c.join("app/sub/b"), "BB", 0o600, 1000);
    write(&c.join("top"), "T", 0o755, 1000);
    dir(&c.join("app/sub"), 0o755, 1000);
    dir(&c.join("app"), 0o750, 1000);
    d
}

#[test]
fn a_directory_source_copies_its_contents() {
    let d = tree();
    let (bytes, l) = layer(d.path(), &["app"], "/dst", "/", &CopyOptions::default()).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 0:0 0750 1000 dst/",
            "f 0:0 0644 1000 dst/a \"A\"",
            "d 0:0 0755 1000 dst/sub/",
            "f 0:0 0600 1000 dst/sub/b \"BB\"",
        ]
    );
    let paths: Vec<&str> = l.paths.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(paths, ["dst", "dst/a", "dst/sub", "dst/sub/b"]);
    assert_eq!(
        l.diff_id,
        Digest::of(&bytes),
        "the DiffID is the tar's sha256"
    );
}

#[test]
fn the_same_tree_twice_gives_the_same_bytes() {
    let d = tree();
    let o = CopyOptions::default();
    let (one, l1) = layer(d.path(), &["."], "/", "/", &o).unwrap();
    let (two, l2) = layer(d.path(), &["."], "/", "/", &o).unwrap();
    assert_eq!(one, two);
    assert_eq!(l1, l2);
    // And a second tree built the same way elsewhere gives the same too.
    let e = tree();
    let (three, l3) = layer(e.path(), &["."], "/", "/", &o).unwrap();
    assert_eq!(one, three);
    assert_eq!(l1.diff_id, l3.diff_id);
}

#[test]
fn mtime_shows_unless_clamped_by_source_date_epoch() {
    let d = tree();
    let plain = CopyOptions::default();
    let epoch = CopyOptions {
        source_date_epoch: Some(500),
        ..CopyOptions::default()
    };
    let (before, lb) = layer(d.path(), &["app"], "/", "/", &plain).unwrap();
    let (before_e, lbe) = layer(d.path(), &["app"], "/", "/", &epoch).unwrap();
    set_mtime(&d.path().join("app/a"), 2000);
    let (after, la) = layer(d.path(), &["app"], "/", "/", &plain).unwrap();
    let (after_e, lae) = layer(d.path(), &["app"], "/", "/", &epoch).unwrap();
    assert_ne!(lb.diff_id, la.diff_id, "a new mtime is a new layer");
    assert!(listing(&after).contains(&"f 0:0 0644 2000 a \"A\"".to_string()));
    assert!(listing(&before).contains(&"f 0:0 0644 1000 a \"A\"".to_string()));
    assert_eq!(before_e, after_e, "both mtimes are clamped to the epoch");
    assert_eq!(lbe.diff_id, lae.diff_id);
    assert!(listing(&after_e).contains(&"f 0:0 0644 500 a \"A\"".to_string()));
    // An epoch later than the mtime leaves it alone.
    let late = CopyOptions {
        source_date_epoch: Some(5000),
        ..CopyOptions::default()
    };
    let (late_bytes, _) = layer(d.path(), &["app"], "/", "/", &late).unwrap();
    assert_eq!(late_bytes, after);
}

#[test]
fn chown_and_chmod_are_in_the_headers() {
    let d = tree();
    let o = CopyOptions {
        chown: Some((1001, 2002)),
        chmod: Some(0o640),
        source_date_epoch: None,
        keep_owners: false,
    };
    let (bytes, _) = layer(d.path(), &["app"], "/x/dst/", "/", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 1001:2002 0755 0 x/",
            "d 1001:2002 0640 1000 x/dst/",
            "f 1001:2002 0640 1000 x/dst/a \"A\"",
            "d 1001:2002 0640 1000 x/dst/sub/",
            "f 1001:2002 0640 1000 x/dst/sub/b \"BB\"",
        ]
    );
}

#[test]
fn a_file_goes_at_dest_or_inside_dest_slash() {
    let d = tree();
    let o = CopyOptions::default();
    let (bytes, _) = layer(d.path(), &["top"], "/bin/tool", "/", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        ["d 0:0 0755 0 bin/", "f 0:0 0755 1000 bin/tool \"T\""]
    );
    let (bytes, _) = layer(d.path(), &["top"], "/bin/tool/", "/", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 0:0 0755 0 bin/",
            "d 0:0 0755 0 bin/tool/",
            "f 0:0 0755 1000 bin/tool/top \"T\"",
        ]
    );
    let (bytes, _) = layer(d.path(), &["app/sub/b"], "/", "/", &o).unwrap();
    assert_eq!(listing(&bytes), ["f 0:0 0600 1000 b \"BB\""]);
}

#[test]
fn several_sources_need_a_dest_ending_in_slash() {
    let d = tree();
    let o = CopyOptions::default();
    let e = layer(d.path(), &["top", "app/a"], "/dst", "/", &o).unwrap_err();
    assert!(
        e.contains("When using COPY with more than one source file, the destination must be a directory and end with a /"),
        "{e}"
    );
    // A wildcard matching two paths is several sources too.
    write(&d.path().join("top2"), "U", 0o644, 1000);
    let e = layer(d.path(), &["top*"], "/dst", "/", &o).unwrap_err();
    assert!(e.contains("more than one source file"), "{e}");
    // Control: the same with a trailing slash works.
    let (bytes, _) = layer(d.path(), &["top", "app/a"], "/dst/", "/", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 0:0 0755 0 dst/",
            "f 0:0 0644 1000 dst/a \"A\"",
            "f 0:0 0755 1000 dst/top \"T\"",
        ]
    );
    let (bytes, _) = layer(d.path(), &["top*"], "/dst/", "/", &o).unwrap();
    assert_eq!(listing(&bytes).len(), 3);
}

#[test]
fn created_parents_are_0755_owned_by_chown_at_the_epoch() {
    let d = tree();
    let o = CopyOptions {
        chown: Some((7, 8)),
        chmod: None,
        source_date_epoch: Some(100),
        keep_owners: false,
    };
    let (bytes, _) = layer(d.path(), &["top"], "/a/b/c", "/", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 7:8 0755 100 a/",
            "d 7:8 0755 100 a/b/",
            "f 7:8 0755 100 a/b/c \"T\"",
        ]
    );
}

#[test]
fn a_relative_dest_is_below_the_workdir() {
    let d = tree();
    let o = CopyOptions::default();
    let (bytes, _) = layer(d.path(), &["top"], "sub/", "/w", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 0:0 0755 0 w/",
            "d 0:0 0755 0 w/sub/",
            "f 0:0 0755 1000 w/sub/top \"T\"",
        ]
    );
    let (bytes, _) = layer(d.path(), &["top"], ".", "/w", &o).unwrap();
    assert_eq!(
        listing(&bytes),
        ["d 0:0 0755 0 w/", "f 0:0 0755 1000 w/top \"T\""]
    );
    // An absolute dest ignores the workdir.
    let (bytes, _) = layer(d.path(), &["top"], "/t", "/w", &o).unwrap();
    assert_eq!(listing(&bytes), ["f 0:0 0755 1000 t \"T\""]);
}

#[test]
fn destinations_resolve_lexically_inside_the_root() {
    let p = |d: &str, w: &str| {
        let (parts, is_dir) = destination(d, w);
        let parts: Vec<String> = parts
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        (parts.join("/"), is_dir)
    };
    assert_eq!(p("/a/../b", "/"), ("b".into(), false));
    assert_eq!(p("../../../x", "/w"), ("x".into(), false));
    assert_eq!(p("..", "/w/x"), ("w".into(), true));
    assert_eq!(p("x/.", "/"), ("x".into(), true));
    assert_eq!(p("/", "/w"), ("".into(), true));
    assert_eq!(p("f", ""), ("f".into(), false));
}

#[test]
fn a_symlink_stays_a_link_and_its_target_is_not_read() {
    let outer = tempfile::tempdir().unwrap();
    let secret = outer.path().join("secret");
    write(&secret, "SECRET", 0o644, 1000);
    let c = outer.path().join("ctx");
    write(&c.join("plain"), "PLAIN", 0o644, 1000);
    std::os::unix::fs::symlink(&secret, c.join("ln")).unwrap();
    std::os::unix::fs::symlink("../secret", c.join("rel")).unwrap();
    set_mtime(&c.join("ln"), 1000);
    set_mtime(&c.join("rel"), 1000);
    let (bytes, _) = layer(
        &c,
        &["ln", "plain", "rel"],
        "/d/",
        "/",
        &CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "d 0:0 0755 0 d/".to_string(),
            format!("l 0:0 0777 1000 d/ln -> {}", secret.display()),
            "f 0:0 0644 1000 d/plain \"PLAIN\"".to_string(),
            "l 0:0 0777 1000 d/rel -> ../secret".to_string(),
        ]
    );
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"PLAIN"),
        "control: a plain file's contents are in the tar"
    );
    assert!(!has(b"SECRET"), "a link's target is never read");
}

#[test]
fn a_file_swapped_for_a_symlink_after_select_is_not_followed() {
    let outer = tempfile::tempdir().unwrap();
    let secret = outer.path().join("secret");
    write(&secret, "SECRET", 0o644, 1000);
    let c = outer.path().join("ctx");
    write(&c.join("d/f"), "SEKRIT", 0o644, 1000);
    let ctx = Context::open(&c).unwrap();
    let sels = [ctx.select("d", &no_rules()).unwrap()];
    let o = CopyOptions::default();

    // Control: unchanged, the file's contents are written.
    let mut out = Vec::new();
    write_copy_layer(&ctx, &sels, "/", "/", &o, &mut out).unwrap();
    assert!(out.windows(6).any(|w| w == b"SEKRIT"));

    // The file becomes a link to a file of the same size outside.
    std::fs::remove_file(c.join("d/f")).unwrap();
    std::os::unix::fs::symlink(&secret, c.join("d/f")).unwrap();
    let mut out = Vec::new();
    let e = write_copy_layer(&ctx, &sels, "/", "/", &o, &mut out).unwrap_err();
    assert!(e.contains("d/f") && e.contains("replaced"), "{e}");
    assert!(!out.windows(6).any(|w| w == b"SECRET"));

    // Its directory becomes a link to a directory with such a file.
    std::fs::remove_file(c.join("d/f")).unwrap();
    std::fs::remove_dir(c.join("d")).unwrap();
    write(&outer.path().join("o/f"), "SECRET", 0o644, 1000);
    std::os::unix::fs::symlink(outer.path().join("o"), c.join("d")).unwrap();
    let mut out = Vec::new();
    let e = write_copy_layer(&ctx, &sels, "/", "/", &o, &mut out).unwrap_err();
    assert!(e.contains("replaced"), "{e}");
    assert!(!out.windows(6).any(|w| w == b"SECRET"));
}

#[test]
fn a_file_that_changed_size_after_select_is_an_error() {
    let d = tree();
    let ctx = Context::open(d.path()).unwrap();
    let sels = [ctx.select("top", &no_rules()).unwrap()];
    std::fs::write(d.path().join("top"), "longer").unwrap();
    let e =
        write_copy_layer(&ctx, &sels, "/", "/", &CopyOptions::default(), Vec::new()).unwrap_err();
    assert!(e.contains("top") && e.contains("changed size"), "{e}");
}

#[test]
fn a_file_read_must_have_exactly_its_size() {
    let mut buf = Vec::new();
    Checked::new(&b"abc"[..], 3).read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"abc", "control: the right size reads whole");
    let e = Checked::new(&b"abc"[..], 5)
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("shrank"), "{e}");
    let e = Checked::new(&b"abcdef"[..], 2)
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("grew"), "{e}");
}

#[test]
fn sockets_are_skipped_and_fifos_kept() {
    let d = tree();
    let c = d.path().join("app");
    let _sock = std::os::unix::net::UnixListener::bind(c.join("sock")).unwrap();
    rustix::fs::mknodat(
        CWD,
        c.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    set_mtime(&c.join("pipe"), 1000);
    set_mtime(&c, 1000);
    let (bytes, _) = layer(d.path(), &["app"], "/", "/", &CopyOptions::default()).unwrap();
    assert_eq!(
        listing(&bytes),
        [
            "f 0:0 0644 1000 a \"A\"",
            "p 0:0 0600 1000 pipe",
            "d 0:0 0755 1000 sub/",
            "f 0:0 0600 1000 sub/b \"BB\"",
        ]
    );
}

#[test]
fn the_later_source_wins_a_path_both_write() {
    let d = tree();
    write(&d.path().join("other/a"), "NEW", 0o600, 1000);
    dir(&d.path().join("other"), 0o755, 1000);
    let (bytes, _) = layer(
        d.path(),
        &["app", "other"],
        "/d/",
        "/",
        &CopyOptions::default(),
    )
    .unwrap();
    let l = listing(&bytes);
    assert!(
        l.contains(&"f 0:0 0600 1000 d/a \"NEW\"".to_string()),
        "{l:?}"
    );
    assert_eq!(l.iter().filter(|x| x.contains(" d/a ")).count(), 1);
}

#[test]
fn long_names_and_tar_tvf() {
    let d = tempfile::tempdir().unwrap();
    let long = "n".repeat(150);
    write(&d.path().join(&long), "L", 0o644, 1000);
    let (bytes, _) = layer(d.path(), &[&long], "/", "/", &CopyOptions::default()).unwrap();
    assert_eq!(listing(&bytes), [format!("f 0:0 0644 1000 {long} \"L\"")]);
    let Ok(out) = std::process::Command::new("tar")
        .arg("-tvf")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&bytes)?;
            child.wait_with_output()
        })
    else {
        return; // no tar(1) here: the tar crate's reading above stands
    };
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&long), "{text}");
}

#[test]
fn headers_carry_no_device_numbers_nor_access_or_change_times() {
    let d = tree();
    let (bytes, _) = layer(d.path(), &["app"], "/x/", "/", &CopyOptions::default()).unwrap();
    let mut ar = tar::Archive::new(bytes.as_slice());
    let mut seen = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let gnu = e
            .header()
            .as_gnu()
            .expect("GNU headers, as layer_tar writes");
        assert!(gnu.dev_major.iter().all(|&b| b == 0), "{:?}", gnu.dev_major);
        assert!(gnu.dev_minor.iter().all(|&b| b == 0), "{:?}", gnu.dev_minor);
        assert!(gnu.atime.iter().all(|&b| b == 0), "{:?}", gnu.atime);
        assert!(gnu.ctime.iter().all(|&b| b == 0), "{:?}", gnu.ctime);
        assert!(e.pax_extensions().unwrap().is_none(), "no PAX records");
        seen += 1;
    }
    assert_eq!(seen, 4, "x/ (app itself) and the three entries below it");
}

#[test]
fn a_device_node_is_refused_and_a_socket_source_skipped() {
    let entry = |path: &str, kind| crate::build::context::walk::Entry {
        path: path.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 0,
        mtime_sec: 1,
        mtime_nsec: 0,
    };
    let sel = |path: &str, kind| Selection {
        matched: vec![path.into()],
        entries: vec![entry(path, kind)],
    };
    let dev = [sel("null", crate::build::context::walk::Kind::CharDevice)];
    let e = super::plan::plan(&dev, "/", "/").unwrap_err();
    assert!(e.contains("null") && e.contains("device node"), "{e}");
    let blk = [sel("sda", crate::build::context::walk::Kind::BlockDevice)];
    assert!(super::plan::plan(&blk, "/", "/").is_err());
    let sock = [sel("s", crate::build::context::walk::Kind::Socket)];
    assert!(super::plan::plan(&sock, "/d/", "/").unwrap().is_empty());
    // Control: a FIFO there is planned.
    let fifo = [sel("p", crate::build::context::walk::Kind::Fifo)];
    let planned: Vec<Vec<u8>> = super::plan::plan(&fifo, "/d/", "/")
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(planned, [b"d".to_vec(), b"d/p".to_vec()]);
}

#[test]
fn a_non_utf8_name_keeps_its_bytes() {
    let d = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    write(&d.path().join(name), "C", 0o644, 1000);
    let (bytes, l) = layer(d.path(), &["."], "/d/", "/", &CopyOptions::default()).unwrap();
    let mut ar = tar::Archive::new(bytes.as_slice());
    let names: Vec<Vec<u8>> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names, [b"d/".to_vec(), b"d/caf\xe9".to_vec()]);
    assert_eq!(l.paths[1].as_os_str().as_bytes(), b"d/caf\xe9");
}
