//! An upper dir as one OCI layer tar (uncompressed), for `hutch commit`.
//!
//! Entries come in the order of [`upper::walk`], with the true owner, mode
//! and type of each file (its `user.containers.override_stat` record),
//! deletions as OCI whiteouts (`.wh.NAME`), opaque directories followed by
//! their `.wh..wh..opq` marker, device nodes as devices, hard links (files
//! with several names in the upper dir) as links to the first name, xattrs
//! the container sees as `SCHILY.xattr.*` PAX records. A directory the
//! container renamed from a lower layer is written whole, as an opaque
//! directory with the content the layers have at its old path merged with
//! the container's changes there (see [`upper`]), so the layer needs no
//! redirect.
//!
//! The tar depends only on the upper dir (and, for renamed directories,
//! the layers below it): headers carry the files' own
//! modification times (whole seconds), numeric owners without user or
//! group names, and no access or change times, so committing the same
//! upper dir twice gives the same DiffID.

use super::upper::{self, Entry, Kind};
use crate::overlay::format;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// What went into a layer tar.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TarStats {
    pub entries: u64,
    pub file_bytes: u64,
}

/// Write the upper dir at `upper`, which lies on the layer dirs `lowers`
/// (top first), as a layer tar to `out`.
pub fn write_layer_tar<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    out: W,
) -> Result<(W, TarStats)> {
    write_layer_tar_clamped(upper, lowers, None, out)
}

/// [`write_layer_tar`] with every mtime later than `clamp` (a build's
/// SOURCE_DATE_EPOCH) set to it.
pub fn write_layer_tar_clamped<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    clamp: Option<i64>,
    out: W,
) -> Result<(W, TarStats)> {
    let mut tar = tar::Builder::new(out);
    let mut stats = TarStats::default();
    let mut first_names: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    upper::walk(upper, lowers, &mut |mut e: Entry| {
        if let Some(c) = clamp {
            e.mtime = e.mtime.min(c);
        }
        let shown = format!("/{}", String::from_utf8_lossy(&e.path));
        append(&mut tar, e, &mut first_names, &mut stats)
            .with_context(|| format!("adding {shown} to the layer"))
    })?;
    let out = tar.into_inner().context("finishing the layer tar")?;
    Ok((out, stats))
}

/// Append a symlink entry whose target is written as it is: the tar
/// crate's `append_link` tidies a target as a path (`/` becomes `//`,
/// `a//b` becomes `a/b`), which would change what the link says. A target
/// longer than the header's 100 bytes goes through `append_link` (its GNU
/// long-name record).
pub(crate) fn append_symlink<W: Write>(
    tar: &mut tar::Builder<W>,
    header: &mut Header,
    name: &Path,
    target: &[u8],
) -> std::io::Result<()> {
    header.set_size(0);
    if target.len() <= 100 && !target.contains(&0) {
        header.set_link_name_literal(target)?;
        tar.append_data(header, name, std::io::empty())
    } else {
        tar.append_link(header, name, Path::new(OsStr::from_bytes(target)))
    }
}

fn header(e: &Entry, kind: EntryType, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(e.uid.into());
    h.set_gid(e.gid.into());
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn with_name(dir_path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir_path.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    e: Entry,
    first_names: &mut HashMap<(u64, u64), Vec<u8>>,
    stats: &mut TarStats,
) -> Result<()> {
    stats.entries += 1;
    match &e.kind {
        Kind::Whiteout => {
            let (dir, name) = match e.path.iter().rposition(|&b| b == b'/') {
                Some(i) => (Some(&e.path[..i]), &e.path[i + 1..]),
                None => (None, e.path.as_slice()),
            };
            let mut wh = format::WHITEOUT_PREFIX.to_vec();
            wh.extend_from_slice(name);
            let p = match dir {
                Some(d) => with_name(d, &wh),
                None => wh,
            };
            let mut h = header(&e, EntryType::Regular, 0o600);
            tar.append_data(&mut h, path(&p), std::io::empty())?;
        }
        Kind::Dir { opaque } => {
            pax_xattrs(tar, &e.xattrs)?;
            let mut h = header(&e, EntryType::Directory, e.mode);
            let mut p = e.path.clone();
            p.push(b'/');
            tar.append_data(&mut h, path(&p), std::io::empty())?;
            if *opaque {
                let mut h = header(&e, EntryType::Regular, e.mode & 0o777);
                let p = with_name(&e.path, format::OPAQUE_MARKER);
                tar.append_data(&mut h, path(&p), std::io::empty())?;
                stats.entries += 1;
            }
        }
        Kind::File { fd, size, link_key } => {
            if let Some(key) = link_key {
                if let Some(first) = first_names.get(key) {
                    let mut h = header(&e, EntryType::Link, e.mode);
                    tar.append_link(&mut h, path(&e.path), path(first))?;
                    return Ok(());
                }
                first_names.insert(*key, e.path.clone());
            }
            pax_xattrs(tar, &e.xattrs)?;
            let mut h = header(&e, EntryType::Regular, e.mode);
            h.set_size(*size);
            let file = std::fs::File::from(fd.try_clone().context("duplicating a descriptor")?);
            tar.append_data(&mut h, path(&e.path), Exactly::new(file, *size))?;
            stats.file_bytes += size;
        }
        Kind::Symlink { target } => {
            let mut h = header(&e, EntryType::Symlink, 0o777);
            append_symlink(tar, &mut h, path(&e.path), target)?;
        }
        Kind::Fifo => {
            let mut h = header(&e, EntryType::Fifo, e.mode);
            tar.append_data(&mut h, path(&e.path), std::io::empty())?;
        }
        Kind::Char { major, minor } | Kind::Block { major, minor } => {
            let t = match e.kind {
                Kind::Char { .. } => EntryType::Char,
                _ => EntryType::Block,
            };
            pax_xattrs(tar, &e.xattrs)?;
            let mut h = header(&e, t, e.mode);
            h.set_device_major(*major)?;
            h.set_device_minor(*minor)?;
            tar.append_data(&mut h, path(&e.path), std::io::empty())?;
        }
    }
    Ok(())
}

/// A PAX extended header with the xattrs of the entry that follows.
fn pax_xattrs<W: Write>(tar: &mut tar::Builder<W>, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let mut data = Vec::new();
    for (name, value) in xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut data, &key, value);
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_path("././@PaxHeader")?;
    h.set_cksum();
    tar.append(&h, data.as_slice())?;
    Ok(())
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Exactly `size` bytes of a file that a running container may be
/// changing: cut if it grew, padded with zeros if it shrank, so the tar
/// stays well formed (the header's size was written first).
struct Exactly<R> {
    inner: std::io::Take<R>,
    left: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, size: u64) -> Self {
        Exactly {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let mut n = self.inner.read(buf)?;
        if n == 0 {
            n = buf.len().min(self.left as usize);
            buf[..n].fill(0);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn symlink_targets_are_written_as_they_are() {
        let long = format!("/{}", "x".repeat(150));
        let targets: [&[u8]; 5] = [b"/", b"a//b", b"dir/", b"./rel", long.as_bytes()];
        let mut b = tar::Builder::new(Vec::new());
        for (i, t) in targets.iter().enumerate() {
            let mut h = Header::new_gnu();
            h.set_entry_type(EntryType::Symlink);
            h.set_mode(0o777);
            append_symlink(&mut b, &mut h, Path::new(&format!("l{i}")), t).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let got: Vec<Vec<u8>> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().link_name_bytes().unwrap().into_owned())
            .collect();
        let want: Vec<Vec<u8>> = targets.iter().map(|t| t.to_vec()).collect();
        assert_eq!(got, want);
    }

    use super::*;
    use crate::overlay::format::{OverrideStat, RecordedType};
    use rustix::fs::{Mode, OFlags};

    fn dirfd(p: &Path) -> std::os::fd::OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    /// `type uid:gid mode path [-> target] [size]` per entry, xattrs apart.
    fn listing(tar_bytes: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let t = match h.entry_type() {
                EntryType::Regular => "f",
                EntryType::Directory => "d",
                EntryType::Symlink => "l",
                EntryType::Link => "h",
                EntryType::Char => "c",
                EntryType::Fifo => "p",
                _ => "?",
            };
            let mut line = format!(
                "{t} {}:{} {:04o} {p}",
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap()
            );
            if let Some(l) = e.link_name_bytes() {
                line.push_str(&format!(" -> {}", String::from_utf8_lossy(&l)));
            }
            if t == "c" {
                line.push_str(&format!(
                    " {},{}",
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap()
                ));
            }
            if let Some(pax) = e.pax_extensions().unwrap() {
                for x in pax {
                    let x = x.unwrap();
                    line.push_str(&format!(" [{}={}]", x.key().unwrap(), x.value().unwrap()));
                }
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

    #[test]
    fn upper_dir_becomes_oci_layer_and_twice_the_same() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path().join("upper");
        std::fs::create_dir_all(u.join("etc/sub")).unwrap();
        std::fs::create_dir(u.join("home")).unwrap();
        std::fs::write(u.join("etc/owned"), b"mine").unwrap();
        let f = rustix::fs::open(u.join("etc/owned"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid: 1234,
                gid: 5678,
                mode: 0o4755,
                kind: Some(RecordedType::File),
            },
        )
        .unwrap();
        rustix::fs::fsetxattr(
            &f,
            "user.hutch.xattr.security.capability",
            b"c",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::fs::hard_link(u.join("etc/owned"), u.join("etc/sub/again")).unwrap();
        std::fs::write(u.join("null"), b"").unwrap();
        let f = rustix::fs::open(u.join("null"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid: 0,
                gid: 0,
                mode: 0o666,
                kind: Some(RecordedType::Char { major: 1, minor: 3 }),
            },
        )
        .unwrap();
        format::make_whiteout(dirfd(&u.join("etc")), b"gone").unwrap();
        format::make_whiteout_file(dirfd(&u), b"old").unwrap();
        format::set_opaque(dirfd(&u.join("home"))).unwrap();
        std::os::unix::fs::symlink("../etc/owned", u.join("home/ln")).unwrap();
        for p in ["etc/sub", "etc", "home"] {
            std::fs::set_permissions(
                u.join(p),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }

        let (one, stats) = write_layer_tar(&u, &[], Vec::new()).unwrap();
        let got = listing(&one);
        assert_eq!(
            got,
            [
                "d 0:0 0755 etc/",
                "f 0:0 0600 etc/.wh.gone",
                "f 1234:5678 4755 etc/owned [SCHILY.xattr.security.capability=c] \"mine\"",
                "d 0:0 0755 etc/sub/",
                "h 1234:5678 4755 etc/sub/again -> etc/owned",
                "d 0:0 0755 home/",
                "f 0:0 0755 home/.wh..wh..opq",
                "l 0:0 0777 home/ln -> ../etc/owned",
                "c 0:0 0666 null 1,3",
                "f 0:0 0600 .wh.old",
            ]
        );
        assert_eq!(stats.file_bytes, 4);
        let (two, _) = write_layer_tar(&u, &[], Vec::new()).unwrap();
        assert_eq!(one, two, "the same upper dir gives the same tar");
        // No user or group names in any header.
        let mut ar = tar::Archive::new(one.as_slice());
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
        }
    }

    #[test]
    fn a_file_that_changes_size_keeps_the_size_of_its_header() {
        let mut buf = Vec::new();
        Exactly::new(&b"abc"[..], 5).read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"abc\0\0");
        buf.clear();
        Exactly::new(&b"abcdef"[..], 2)
            .read_to_end(&mut buf)
            .unwrap();
        assert_eq!(buf, b"ab");
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, b"k", b"v");
        assert_eq!(out, b"6 k=v\n");
        // 93 bytes of value: 99 in all; 94: not 100 but 101 (three digits).
        for (value, total) in [(93, 99), (94, 101)] {
            let mut out = Vec::new();
            pax_record(&mut out, b"k", &vec![b'x'; value]);
            assert_eq!(out.len(), total);
            assert!(out.starts_with(format!("{total} k=").as_bytes()));
        }
    }
}
