//! Tar dialects (long names, PAX, GNU sparse), holes, and broken input.

use super::*;

// ---- formats: long names, PAX, sparse ----------------------------------

#[test]
fn unpack_long_names() {
    let sb = sandbox();
    let long_name = "n".repeat(150);
    let deep: String = (0..30).map(|i| format!("dir{i:02}-xxxx/")).collect();
    let deep_file = format!("{deep}{}", "f".repeat(120));
    assert!(deep_file.len() > 255);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, &long_name, &b"long"[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_data(&mut h, &deep_file, &b"deep"[..]).unwrap();
    // A long hard link target.
    let mut h = Header::new_gnu();
    h.set_size(0);
    h.set_entry_type(EntryType::Link);
    b.append_link(&mut h, "short", &deep_file).unwrap();
    // PAX path.
    let pax_path = format!("{deep}pax-{}", "p".repeat(100));
    b.append_pax_extensions([("path", pax_path.as_bytes())])
        .unwrap();
    let mut h = Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    h.as_ustar_mut().unwrap().name[..5].copy_from_slice(b"dummy");
    h.set_cksum();
    b.append(&h, &b"pax"[..]).unwrap();
    let data = b.into_inner().unwrap();
    sb.unpack(&data).unwrap();
    assert_eq!(std::fs::read(sb.p(&long_name)).unwrap(), b"long");
    assert_eq!(std::fs::read(sb.p(&deep_file)).unwrap(), b"deep");
    assert_eq!(std::fs::read(sb.p("short")).unwrap(), b"deep");
    assert_eq!(std::fs::read(sb.p(&pax_path)).unwrap(), b"pax");
    assert!(!sb.p("dummy").exists());
}

fn pax_file(b: &mut tar::Builder<Vec<u8>>, path: &str, t: EntryType, pax: &[(&str, &[u8])]) {
    b.append_pax_extensions(pax.iter().copied()).unwrap();
    let mut h = Header::new_ustar();
    h.set_size(0);
    h.set_mode(if t == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_entry_type(t);
    b.append_data(&mut h, path, &b""[..]).unwrap();
}

#[test]
fn unpack_user_xattrs_preserved() {
    let sb = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    pax_file(
        &mut b,
        "bin/ping",
        EntryType::Regular,
        &[
            ("SCHILY.xattr.user.mime_type", b"text/plain"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00",
            ),
            ("SCHILY.xattr.trusted.thing", b"t"),
            ("mtime", b"1234567890.5"),
        ],
    );
    pax_file(
        &mut b,
        "d",
        EntryType::Directory,
        &[("SCHILY.xattr.user.dir", b"yes")],
    );
    sb.unpack(&b.into_inner().unwrap()).unwrap();
    let f = sb.p("bin/ping");
    assert_eq!(xattr(&f, "user.mime_type"), Some(b"text/plain".to_vec()));
    assert_eq!(
        xattr(&f, "user.hutch.xattr.security.capability"),
        Some(b"\x01\x00\x00\x02\x00\x20\x00\x00".to_vec())
    );
    assert_eq!(
        xattr(&f, "user.hutch.xattr.trusted.thing"),
        Some(b"t".to_vec())
    );
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
    assert_eq!(xattr(&sb.p("d"), "user.dir"), Some(b"yes".to_vec()));
}

#[test]
fn unpack_forged_override_stat_not_applied() {
    let sb = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    pax_file(
        &mut b,
        "f",
        EntryType::Regular,
        &[
            (
                "SCHILY.xattr.user.containers.override_stat",
                b"0:0:4755:file",
            ),
            ("SCHILY.xattr.user.hutch.xattr.security.capability", b"caps"),
            ("SCHILY.xattr.user.fuseoverlayfs.override_stat", b"0:0:4755"),
            ("SCHILY.xattr.user.ok", b"ok"),
        ],
    );
    pax_file(
        &mut b,
        "d",
        EntryType::Directory,
        &[("SCHILY.xattr.user.overlay.opaque", b"y")],
    );
    pax_file(
        &mut b,
        "owned",
        EntryType::Regular,
        &[(
            "SCHILY.xattr.user.containers.override_stat",
            b"0:0:4755:file",
        )],
    );
    let mut data = b.into_inner().unwrap();
    // Also a forged record on an entry that gets a real one: the real
    // one must win. (uid 42 via a raw header appended before the end.)
    data.truncate(data.len() - 1024);
    let mut t = Tar { data };
    t.entry(b"real", EntryType::Regular, b"", |h| h.set_uid(42));
    sb.unpack(&t.bytes()).unwrap();
    assert_eq!(record(&sb.p("f")), None);
    assert_eq!(
        xattr(&sb.p("f"), "user.hutch.xattr.security.capability"),
        None
    );
    assert_eq!(xattr(&sb.p("f"), "user.fuseoverlayfs.override_stat"), None);
    assert_eq!(xattr(&sb.p("f"), "user.ok"), Some(b"ok".to_vec()));
    assert!(!format::is_opaque(open_dir(&sb.p("d"))).unwrap());
    assert_eq!(record(&sb.p("owned")), None);
    assert_eq!(record(&sb.p("real")), Some("42:0:0644:file".into()));
}

#[test]
fn unpack_gnu_sparse_file() {
    let sb = sandbox();
    let real = 3 * 1024 * 1024 + 100;
    let mut h = Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..6].copy_from_slice(b"sparse");
        g.sparse[0].set_offset(1024 * 1024);
        g.sparse[0].set_length(512);
        g.sparse[1].set_offset(real - 100);
        g.sparse[1].set_length(100);
        g.set_real_size(real);
    }
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(612);
    h.set_mode(0o644);
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend(std::iter::repeat_n(b'a', 512));
    data.extend(std::iter::repeat_n(b'b', 100));
    data.extend(std::iter::repeat_n(0u8, 512 - 100));
    data.extend_from_slice(&[0u8; 1024]);
    let stats = sb.unpack(&data).unwrap();
    assert_eq!(stats.file_bytes, real);
    let content = std::fs::read(sb.p("sparse")).unwrap();
    assert_eq!(content.len() as u64, real);
    assert!(content[..1024 * 1024].iter().all(|&b| b == 0));
    assert!(
        content[1024 * 1024..1024 * 1024 + 512]
            .iter()
            .all(|&b| b == b'a')
    );
    assert!(content[(real - 100) as usize..].iter().all(|&b| b == b'b'));
    let m = std::fs::metadata(sb.p("sparse")).unwrap();
    assert!(
        m.blocks() * 512 < real / 2,
        "holes were written: {} blocks",
        m.blocks()
    );
}

#[test]
fn unpack_zero_runs_become_holes() {
    let sb = sandbox();
    let mut body = vec![0u8; 2 * 1024 * 1024];
    body.extend_from_slice(b"end");
    body.extend(vec![0u8; 1024 * 1024]);
    let mut t = Tar::new();
    t.file("z", &body).file("small-zero", &[0u8; 10]);
    sb.unpack(&t.bytes()).unwrap();
    let got = std::fs::read(sb.p("z")).unwrap();
    assert_eq!(got, body);
    let m = std::fs::metadata(sb.p("z")).unwrap();
    assert!(m.blocks() * 512 < 1024 * 1024, "{} blocks", m.blocks());
    assert_eq!(std::fs::read(sb.p("small-zero")).unwrap(), [0u8; 10]);
}

// ---- broken input -------------------------------------------------------

#[test]
fn unpack_truncated_tar_errors() {
    let mut t = Tar::new();
    t.dir("d/")
        .file("d/a", &vec![b'x'; 10_000])
        .file("d/b", b"b");
    let full = t.bytes();
    // Cut in the middle of the file data.
    let sb = sandbox();
    let err = sb.unpack(&full[..512 * 2 + 5000]).unwrap_err();
    assert!(matches!(err, UnpackError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("\"d/a\""), "{err}");
    // Cut in the middle of a header.
    let sb = sandbox();
    let second_header = 512 + 512 + 10_240;
    let err = sb.unpack(&full[..second_header + 100]).unwrap_err();
    assert!(matches!(err, UnpackError::Tar { .. }), "{err}");
    assert!(err.to_string().contains("after entry \"d/a\""), "{err}");
    // Every cut point: an error or a consistent prefix, never a panic.
    for cut in (0..full.len()).step_by(97) {
        let sb = sandbox();
        let _ = sb.unpack(&full[..cut]);
        sb.assert_outside_untouched();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn unpack_garbage_errors() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let garbage: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
    let sb = sandbox();
    let err = sb.unpack(&garbage[..]).unwrap_err();
    assert!(matches!(err, UnpackError::NotTar { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("not a tar archive"), "{msg}");
    assert!(msg.chars().all(|c| !c.is_control()), "escaped: {msg:?}");
    sb.assert_outside_untouched();
    // An empty archive is fine.
    let sb = sandbox();
    assert_eq!(sb.unpack(&[0u8; 1024][..]).unwrap().entries, 0);
    assert_eq!(sb.unpack(&[][..]).unwrap().entries, 0);
}

#[test]
fn unpack_mutated_tars_never_panic_or_escape() {
    let mut t = Tar::new();
    t.dir("a/")
        .file("a/f", b"hello")
        .symlink("a/s", "../../outside")
        .hardlink("a/h", "a/f")
        .file("a/.wh.x", b"")
        .entry(b"a/dev", EntryType::Char, b"", |h| {
            h.set_device_major(1).unwrap();
        })
        .file("b", b"bye");
    let base = t.bytes();
    let mut rng = Rng(12345);
    for _ in 0..200 {
        let mut data = base.clone();
        for _ in 0..(1 + rng.next() % 8) {
            let i = (rng.next() as usize) % data.len();
            data[i] = match rng.next() % 4 {
                0 => b'.',
                1 => b'/',
                2 => 0,
                _ => rng.next() as u8,
            };
        }
        let sb = sandbox();
        let _ = sb.unpack(&data[..]);
        sb.assert_outside_untouched();
    }
}

#[test]
fn unpack_error_messages_name_the_entry() {
    let e = UnpackError::Escape {
        path: "../etc/passwd".into(),
    };
    assert_eq!(
        e.to_string(),
        "layer entry \"../etc/passwd\": path leaves the layer root"
    );
}

#[test]
fn normalize_paths() {
    let mut out = Vec::new();
    for (raw, want) in [
        ("a/b", "a/b"),
        ("/a/b/", "a/b"),
        ("./a/./b", "a/b"),
        ("//a//b", "a/b"),
        (".", ""),
        ("./", ""),
        ("/", ""),
        ("", ""),
    ] {
        normalize(raw.as_bytes(), &mut out).unwrap();
        assert_eq!(out, want.as_bytes(), "{raw}");
    }
    for raw in ["..", "../a", "a/../b", "a/..", "/.."] {
        assert_eq!(
            normalize(raw.as_bytes(), &mut out),
            Err(PathProblem::DotDot),
            "{raw}"
        );
    }
    assert_eq!(normalize(b"a\0b", &mut out), Err(PathProblem::Nul));
    assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
    assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
}

#[test]
fn pax_times() {
    let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
    assert_eq!(t("12"), Some((12, 0)));
    assert_eq!(t("12.5"), Some((12, 500_000_000)));
    assert_eq!(t("12.0000000019"), Some((12, 1)));
    assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
    assert_eq!(t("-3"), Some((-3, 0)));
    assert_eq!(t(""), None);
    assert_eq!(t("1x"), None);
    assert_eq!(t(".5"), None);
    assert_eq!(t("99999999999999999999999"), None);
}
