//! A tree through a tar stream and back, on the host; hostile streams
//! against a destination next to a directory they aim at.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A tar entry with its name (and link target) written into the header
/// as given, `..` and all, as a hostile writer would.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    h.set_mtime(1_000_000);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Every path below `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0u8; 1024]);
}

fn host_opts(one_item: bool) -> Options {
    Options {
        owners: Owners::Caller,
        host: true,
        one_item,
    }
}

fn open_dir(p: &Path) -> std::os::fd::OwnedFd {
    rustix::fs::open(
        p,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap()
}

fn into(p: &Path) -> impl FnOnce(bool) -> anyhow::Result<Target> {
    let fd = open_dir(p);
    move |_| Ok(Target::Into(fd))
}

#[test]
fn a_tree_goes_through_a_tar_stream_and_back() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file"), b"contents").unwrap();
    std::fs::set_permissions(
        src.join("sub/file"),
        std::fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    std::fs::hard_link(src.join("sub/file"), src.join("hard")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::fs::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::open(src.join("sub"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let mut tar = tar::Builder::new(Vec::new());
    let item = ItemPath::host(src.as_os_str().as_encoded_bytes());
    write_item(&mut tar, Base::Host, &item, false, "on the host").unwrap();
    let bytes = tar.into_inner().unwrap();

    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let parent = open_dir(&dest);
    let done = extract(&bytes[..], host_opts(true), |is_dir| {
        assert!(is_dir);
        Ok(Target::Renamed {
            parent,
            name: b"copy".to_vec(),
        })
    })
    .unwrap();
    assert!(done.skipped.is_empty());
    let copy = dest.join("copy");
    assert_eq!(std::fs::read(copy.join("sub/file")).unwrap(), b"contents");
    // Set-id bits do not reach the host.
    let m = std::fs::metadata(copy.join("sub/file")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o751);
    let h = std::fs::metadata(copy.join("hard")).unwrap();
    assert_eq!((h.ino(), h.nlink()), (m.ino(), 2), "one file, two names");
    assert_eq!(
        std::fs::read_link(copy.join("abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    let f = std::fs::symlink_metadata(copy.join("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&f.file_type()));
    assert_eq!(f.permissions().mode() & 0o777, 0o640);
    let d = std::fs::metadata(copy.join("sub")).unwrap();
    assert_eq!(d.permissions().mode() & 0o777, 0o750);
    assert_eq!(
        d.mtime(),
        1_000_000,
        "a directory's mtime, set after its contents"
    );
}

#[test]
fn a_symlink_the_stream_made_is_never_written_through() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    let dest = t.path().join("dest");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(&dest).unwrap();
    let mut s = Vec::new();
    raw_entry(&mut s, "top/", tar::EntryType::Directory, "", b"");
    raw_entry(&mut s, "top/ok", tar::EntryType::Regular, "", b"ok\n");
    raw_entry(
        &mut s,
        "top/l",
        tar::EntryType::Symlink,
        outside.to_str().unwrap(),
        b"",
    );
    raw_entry(&mut s, "top/l/x", tar::EntryType::Regular, "", b"escaped\n");
    end(&mut s);
    let err = extract(&s[..], host_opts(true), into(&dest)).unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing to write through it"),
        "{err:#}"
    );
    // Control: what came before was written.
    assert_eq!(std::fs::read(dest.join("top/ok")).unwrap(), b"ok\n");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn names_and_links_outside_the_item_or_the_destination_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    for (name, kind, link, want) in [
        (
            "../x",
            tar::EntryType::Regular,
            "",
            "leaves the destination",
        ),
        (
            "top/../../x",
            tar::EntryType::Regular,
            "",
            "leaves the destination",
        ),
        ("other/x", tar::EntryType::Regular, "", "not below \"top\""),
        ("/etc/x", tar::EntryType::Regular, "", "not below \"top\""),
        (
            "top/h",
            tar::EntryType::Link,
            "/etc/passwd",
            "not below \"top\"",
        ),
        (
            "top/h2",
            tar::EntryType::Link,
            "../x",
            "leaves the destination",
        ),
    ] {
        let mut s = Vec::new();
        raw_entry(&mut s, "top/", tar::EntryType::Directory, "", b"");
        raw_entry(&mut s, name, kind, link, b"data\n");
        end(&mut s);
        let err = extract(&s[..], host_opts(true), into(&dest)).unwrap_err();
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
    }
    assert_eq!(names(t.path()), ["dest", "dest/top"]);
}

#[test]
fn a_tar_from_stdin_keeps_absolute_names_inside_the_destination() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let mut s = Vec::new();
    raw_entry(&mut s, "/abs/file", tar::EntryType::Regular, "", b"a\n");
    raw_entry(&mut s, "rel", tar::EntryType::Regular, "", b"r\n");
    end(&mut s);
    extract(&s[..], host_opts(false), into(&dest)).unwrap();
    assert_eq!(std::fs::read(dest.join("abs/file")).unwrap(), b"a\n");
    assert_eq!(std::fs::read(dest.join("rel")).unwrap(), b"r\n");
}

#[test]
fn an_empty_stream_writes_nothing() {
    let called = std::cell::Cell::new(false);
    let done = extract(&[][..], host_opts(true), |_| {
        called.set(true);
        anyhow::bail!("not reached")
    })
    .unwrap();
    assert_eq!(done.entries, 0);
    assert!(!called.get());
}
