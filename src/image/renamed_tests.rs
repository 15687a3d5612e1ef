//! A container's renamed lower directories (`user.overlay.redirect`, see
//! `overlay::format`, "Renamed directories") as `hutch diff` reports them
//! and `hutch commit` archives them: the new path written whole (opaque,
//! with the layers' content), the old path deleted.

use super::diff::changes;
use super::layer_tar::write_layer_tar;
use crate::overlay::format::{self, OverrideStat, RecordedType};
use rustix::fs::{Mode, OFlags, XattrFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn dirfd(p: &Path) -> OwnedFd {
    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

/// The directory `rel` below `base` and its parents, with mode 0755
/// (whatever the umask).
fn mkdir(base: &Path, rel: &str) {
    let mut p = base.to_path_buf();
    std::fs::create_dir_all(&p).unwrap();
    for name in rel.split('/').filter(|n| !n.is_empty()) {
        p.push(name);
        match std::fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("{}: {e}", p.display()),
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn write(p: &Path, data: &str) {
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn record(p: &Path, uid: u32, gid: u32, mode: u32, kind: RecordedType) {
    let fd = rustix::fs::open(p, OFlags::RDONLY, Mode::empty()).unwrap();
    let st = OverrideStat {
        uid,
        gid,
        mode,
        kind: Some(kind),
    };
    format::write_override_stat(&fd, &st).unwrap();
}

fn redirect(dir: &Path, value: &[u8]) {
    rustix::fs::fsetxattr(
        dirfd(dir),
        format::REDIRECT_XATTR,
        value,
        XattrFlags::empty(),
    )
    .unwrap();
}

fn whiteout(dir: &Path, name: &str) {
    format::make_whiteout(dirfd(dir), name.as_bytes()).unwrap();
}

/// Two layers: the bottom one has `/usr/lib/x` (owned 7:8, mode 0750)
/// with files, a subdirectory, hard links and a symlink, and
/// `/usr/lib/y`; the top one changes `/usr/lib/x` (deletes `hidden` and
/// `sub/old`, adds `new-in-l1`, makes `opq` opaque).
struct Image {
    _d: tempfile::TempDir,
    lowers: Vec<PathBuf>,
    up: PathBuf,
}

fn image() -> Image {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let (l1, l2, up) = (root.join("l1"), root.join("l2"), root.join("up"));
    // Bottom layer.
    for dir in [
        "opt",
        "usr/lib/x/sub",
        "usr/lib/x/opq",
        "usr/lib/y",
        "usr/share/w",
    ] {
        mkdir(&l2, dir);
    }
    let x = l2.join("usr/lib/x");
    std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o750)).unwrap();
    record(&x, 7, 8, 0o750, RecordedType::Dir);
    write(&x.join("a"), "A");
    record(&x.join("a"), 12, 34, 0o4750, RecordedType::File);
    write(&x.join("gone"), "G");
    write(&x.join("hidden"), "H");
    write(&x.join("hl1"), "L");
    std::fs::hard_link(x.join("hl1"), x.join("hl2")).unwrap();
    std::os::unix::fs::symlink("a", x.join("ln")).unwrap();
    write(&x.join("sub/s1"), "S1");
    write(&x.join("sub/old"), "O");
    write(&x.join("opq/below"), "B");
    write(&l2.join("usr/lib/y/f"), "Y");
    write(&l2.join("usr/share/w/f"), "W");
    std::os::unix::fs::symlink("lib", l2.join("usr/link")).unwrap();
    // Top layer.
    for dir in ["usr/lib/x/sub", "usr/lib/x/opq"] {
        mkdir(&l1, dir);
    }
    let x1 = l1.join("usr/lib/x");
    std::fs::set_permissions(&x1, std::fs::Permissions::from_mode(0o750)).unwrap();
    record(&x1, 7, 8, 0o750, RecordedType::Dir);
    whiteout(&x1, "hidden");
    format::make_whiteout_file(dirfd(&x1.join("sub")), b"old").unwrap();
    write(&x1.join("new-in-l1"), "N");
    format::set_opaque(dirfd(&x1.join("opq"))).unwrap();
    write(&x1.join("opq/above"), "A1");
    mkdir(&up, "");
    Image {
        _d: d,
        lowers: vec![l1, l2],
        up,
    }
}

impl Image {
    /// `mv /usr/lib/x /opt/x` as the overlay records it, with the redirect
    /// value `value`.
    fn moved(&self, value: &[u8]) -> PathBuf {
        let up = &self.up;
        mkdir(up, "opt/x");
        mkdir(up, "usr/lib");
        // What the overlay copies: the directory's owner and mode.
        std::fs::set_permissions(up.join("opt/x"), std::fs::Permissions::from_mode(0o750)).unwrap();
        record(&up.join("opt/x"), 7, 8, 0o750, RecordedType::Dir);
        redirect(&up.join("opt/x"), value);
        whiteout(&up.join("usr/lib"), "x");
        up.join("opt/x")
    }

    fn diff(&self) -> Vec<String> {
        changes(&self.up, &self.lowers)
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path_lossy()))
            .collect()
    }

    fn tar(&self) -> Vec<String> {
        let (bytes, _) = write_layer_tar(&self.up, &self.lowers, Vec::new()).unwrap();
        listing(&bytes)
    }
}

/// `type uid:gid mode path [-> target] ["data"]` per entry.
fn listing(tar_bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let t = match h.entry_type() {
            tar::EntryType::Regular => "f",
            tar::EntryType::Directory => "d",
            tar::EntryType::Symlink => "l",
            tar::EntryType::Link => "h",
            _ => "?",
        };
        let mut line = format!(
            "{t} {}:{} {:04o} {}",
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
            String::from_utf8_lossy(&e.path_bytes())
        );
        if let Some(l) = e.link_name_bytes() {
            line.push_str(&format!(" -> {}", String::from_utf8_lossy(&l)));
        }
        let mut data = String::new();
        e.read_to_string(&mut data).unwrap();
        if !data.is_empty() {
            line.push_str(&format!(" {data:?}"));
        }
        out.push(line);
    }
    out
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The moved directory's content in the tar as the layers show it at
/// `/usr/lib/x`, below `opt/x/`.
const MOVED_CONTENT: [&str; 10] = [
    "f 12:34 4750 opt/x/a \"A\"",
    "f 0:0 0644 opt/x/gone \"G\"",
    "f 0:0 0644 opt/x/hl1 \"L\"",
    "h 0:0 0644 opt/x/hl2 -> opt/x/hl1",
    "l 0:0 0777 opt/x/ln -> a",
    "f 0:0 0644 opt/x/new-in-l1 \"N\"",
    "d 0:0 0755 opt/x/opq/",
    "f 0:0 0644 opt/x/opq/above \"A1\"",
    "d 0:0 0755 opt/x/sub/",
    "f 0:0 0644 opt/x/sub/s1 \"S1\"",
];

#[test]
fn a_moved_directory_is_written_whole_and_its_old_path_deleted() {
    let img = image();
    img.moved(b"/usr/lib/x");
    let mut want = strs(&[
        "d 0:0 0755 opt/",
        "d 7:8 0750 opt/x/",
        "f 7:8 0750 opt/x/.wh..wh..opq",
    ]);
    want.extend(strs(&MOVED_CONTENT));
    want.extend(strs(&[
        "d 0:0 0755 usr/",
        "d 0:0 0755 usr/lib/",
        "f 0:0 0600 usr/lib/.wh.x",
    ]));
    assert_eq!(img.tar(), want);
    assert_eq!(
        img.diff(),
        [
            "C /opt",
            "A /opt/x",
            "A /opt/x/a",
            "A /opt/x/gone",
            "A /opt/x/hl1",
            "A /opt/x/hl2",
            "A /opt/x/ln",
            "A /opt/x/new-in-l1",
            "A /opt/x/opq",
            "A /opt/x/opq/above",
            "A /opt/x/sub",
            "A /opt/x/sub/s1",
            "C /usr",
            "C /usr/lib",
            "D /usr/lib/x",
        ]
    );
}

#[test]
fn changes_inside_a_moved_directory_merge_with_its_lower_content() {
    let img = image();
    let x = img.moved(b"/usr/lib/x");
    write(&x.join("fresh"), "F");
    write(&x.join("a"), "A2");
    whiteout(&x, "gone");
    format::make_whiteout_file(dirfd(&x), b"ln").unwrap();
    // A whiteout of a name the layers do not have: nothing.
    whiteout(&x, "never");
    mkdir(&x, "sub");
    write(&x.join("sub/s2"), "S2");
    let tar = img.tar();
    let inside: Vec<&str> = tar
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(" opt/x/"))
        .collect();
    assert_eq!(
        inside,
        [
            "d 7:8 0750 opt/x/",
            "f 7:8 0750 opt/x/.wh..wh..opq",
            "f 0:0 0644 opt/x/a \"A2\"",
            "f 0:0 0644 opt/x/fresh \"F\"",
            "f 0:0 0644 opt/x/hl1 \"L\"",
            "h 0:0 0644 opt/x/hl2 -> opt/x/hl1",
            "f 0:0 0644 opt/x/new-in-l1 \"N\"",
            "d 0:0 0755 opt/x/opq/",
            "f 0:0 0644 opt/x/opq/above \"A1\"",
            "d 0:0 0755 opt/x/sub/",
            "f 0:0 0644 opt/x/sub/s1 \"S1\"",
            "f 0:0 0644 opt/x/sub/s2 \"S2\"",
        ]
    );
    let diff = img.diff();
    for want in [
        "A /opt/x/a",
        "A /opt/x/fresh",
        "A /opt/x/sub/s2",
        "D /usr/lib/x",
    ] {
        assert!(diff.contains(&want.to_string()), "{want}: {diff:?}");
    }
    for gone in ["/opt/x/gone", "/opt/x/ln", "/opt/x/never"] {
        assert!(!diff.iter().any(|l| l.ends_with(gone)), "{gone}: {diff:?}");
    }
}

#[test]
fn nested_and_relative_redirects() {
    let img = image();
    let x = img.moved(b"/usr/lib/x");
    // Inside the moved directory: `sub` renamed to `moved` (a bare name:
    // relative to where the parent's content is in the layers,
    // /usr/lib/x), and /usr/share/w moved to `w2`, with a file added.
    whiteout(&x, "sub");
    mkdir(&x, "moved");
    redirect(&x.join("moved"), b"sub");
    mkdir(&x, "w2");
    redirect(&x.join("w2"), b"/usr/share/w");
    write(&x.join("w2/more"), "M");
    mkdir(&img.up, "usr/share");
    whiteout(&img.up.join("usr/share"), "w");
    // At the top level: /usr/lib/y renamed to /usr/lib/z (a bare name).
    mkdir(&img.up, "usr/lib/z");
    redirect(&img.up.join("usr/lib/z"), b"y");
    whiteout(&img.up.join("usr/lib"), "y");
    let tar = img.tar();
    let got: Vec<&str> = tar
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(" opt/x/moved") || l.contains("w2") || l.contains("lib/z"))
        .collect();
    assert_eq!(
        got,
        [
            "d 0:0 0755 opt/x/moved/",
            "f 0:0 0755 opt/x/moved/.wh..wh..opq",
            "f 0:0 0644 opt/x/moved/s1 \"S1\"",
            "d 0:0 0755 opt/x/w2/",
            "f 0:0 0755 opt/x/w2/.wh..wh..opq",
            "f 0:0 0644 opt/x/w2/f \"W\"",
            "f 0:0 0644 opt/x/w2/more \"M\"",
            "d 0:0 0755 usr/lib/z/",
            "f 0:0 0755 usr/lib/z/.wh..wh..opq",
            "f 0:0 0644 usr/lib/z/f \"Y\"",
        ]
    );
    // The renamed-away `sub` is not written (nor its whiteout, inside an
    // opaque directory).
    assert!(!tar.iter().any(|l| l.contains("opt/x/sub")), "{tar:?}");
    let diff = img.diff();
    for want in [
        "A /opt/x/moved/s1",
        "A /opt/x/w2/f",
        "A /opt/x/w2/more",
        "A /usr/lib/z",
        "A /usr/lib/z/f",
        "D /usr/lib/x",
        "D /usr/lib/y",
        "D /usr/share/w",
    ] {
        assert!(diff.contains(&want.to_string()), "{want}: {diff:?}");
    }
}

#[test]
fn an_invalid_redirect_is_ignored() {
    for bad in [&b"/usr/../usr/lib/x"[..], b"usr/lib/x", b"", b"/usr//lib/x"] {
        let img = image();
        img.moved(bad);
        // The directory as it is in the upper dir: empty, not opaque.
        assert_eq!(
            img.tar(),
            [
                "d 0:0 0755 opt/",
                "d 7:8 0750 opt/x/",
                "d 0:0 0755 usr/",
                "d 0:0 0755 usr/lib/",
                "f 0:0 0600 usr/lib/.wh.x",
            ],
            "{bad:?}"
        );
        assert_eq!(
            img.diff(),
            ["C /opt", "A /opt/x", "C /usr", "C /usr/lib", "D /usr/lib/x"],
            "{bad:?}"
        );
    }
    // The control, a valid value, is a_moved_directory_is_written_whole...
}

#[test]
fn a_redirect_to_nothing_gives_an_empty_opaque_directory() {
    // Missing, a file, a whited-out directory, a path through a symlink
    // (`usr/link` -> `lib`: never followed).
    for target in [
        &b"/usr/lib/nothing"[..],
        b"/usr/lib/x/a",
        b"/usr/lib/x/hidden",
        b"/usr/link/x",
        b"/usr/lib/x/opq/below",
    ] {
        let img = image();
        img.moved(target);
        assert_eq!(
            img.tar(),
            [
                "d 0:0 0755 opt/",
                "d 7:8 0750 opt/x/",
                "f 7:8 0750 opt/x/.wh..wh..opq",
                "d 0:0 0755 usr/",
                "d 0:0 0755 usr/lib/",
                "f 0:0 0600 usr/lib/.wh.x",
            ],
            "{:?}",
            String::from_utf8_lossy(target)
        );
    }
    // Control: through the real path, the symlink's target has content.
    let img = image();
    img.moved(b"/usr/lib/x/sub");
    assert!(
        img.tar()
            .contains(&"f 0:0 0644 opt/x/s1 \"S1\"".to_string())
    );
}

/// Descriptors stay bounded below a renamed directory however deep the
/// layers' tree is and however many layers hold it: the layers'
/// directories are not held across the walk of their subdirectories.
#[test]
fn a_deep_moved_tree_holds_few_descriptors() {
    const LAYERS: usize = 8;
    const DEPTH: usize = 150;
    let d = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    for i in 0..LAYERS {
        let l = d.path().join(format!("l{i}"));
        let mut p = l.join("a");
        std::fs::create_dir_all(&p).unwrap();
        for _ in 0..DEPTH {
            p.push("d");
            std::fs::create_dir(&p).unwrap();
        }
        std::fs::write(p.join(format!("f{i}")), "x").unwrap();
        lowers.push(l);
    }
    let up = d.path().join("up");
    mkdir(&up, "b");
    redirect(&up.join("b"), b"/a");
    whiteout(&up, "a");
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = open_fds();
    let (mut most, mut files) = (0, 0);
    super::upper::walk(&up, &lowers, &mut |e| {
        most = most.max(open_fds());
        if matches!(e.kind, super::upper::Kind::File { .. }) {
            files += 1;
        }
        Ok(())
    })
    .unwrap();
    // Every layer's file at the bottom (all layers merge there).
    assert_eq!(files, LAYERS);
    // One directory per level per layer would be 1,200; the walk holds
    // the layer roots and a few more (other tests may open some meanwhile).
    assert!(most < before + LAYERS + 60, "{most} open, {before} before");
}

/// Opaque hides the layers, redirect or not (as on the kernel overlay).
#[test]
fn a_redirect_on_an_opaque_directory_is_not_followed() {
    let img = image();
    let x = img.moved(b"/usr/lib/x");
    format::set_opaque(dirfd(&x)).unwrap();
    write(&x.join("own"), "O");
    assert_eq!(
        img.tar(),
        [
            "d 0:0 0755 opt/",
            "d 7:8 0750 opt/x/",
            "f 7:8 0750 opt/x/.wh..wh..opq",
            "f 0:0 0644 opt/x/own \"O\"",
            "d 0:0 0755 usr/",
            "d 0:0 0755 usr/lib/",
            "f 0:0 0600 usr/lib/.wh.x",
        ]
    );
}
