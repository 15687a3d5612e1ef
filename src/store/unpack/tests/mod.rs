//! Tests of unpacking: crafted tarballs and the helpers the test files share.

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use tar::{EntryType, Header};

// ---- crafted tarballs -------------------------------------------------

/// A tar written header by header, with raw name bytes (so that `..`
/// and other things `tar::Builder` refuses can be written).
struct Tar {
    data: Vec<u8>,
}

impl Tar {
    fn new() -> Tar {
        Tar { data: Vec::new() }
    }

    fn entry(
        &mut self,
        name: &[u8],
        t: EntryType,
        body: &[u8],
        f: impl FnOnce(&mut Header),
    ) -> &mut Tar {
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name = [0; 100];
            g.name[..name.len()].copy_from_slice(name);
        }
        h.set_entry_type(t);
        h.set_size(body.len() as u64);
        h.set_mode(if t == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        f(&mut h);
        h.set_cksum();
        self.data.extend_from_slice(h.as_bytes());
        self.data.extend_from_slice(body);
        let pad = (512 - body.len() % 512) % 512;
        self.data.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(&mut self, name: &str, body: &[u8]) -> &mut Tar {
        self.entry(name.as_bytes(), EntryType::Regular, body, |_| {})
    }

    fn dir(&mut self, name: &str) -> &mut Tar {
        self.entry(name.as_bytes(), EntryType::Directory, b"", |_| {})
    }

    fn link(&mut self, name: &str, t: EntryType, target: &str) -> &mut Tar {
        self.entry(name.as_bytes(), t, b"", |h| {
            let g = h.as_gnu_mut().unwrap();
            g.linkname = [0; 100];
            g.linkname[..target.len()].copy_from_slice(target.as_bytes());
        })
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.link(name, EntryType::Symlink, target)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.link(name, EntryType::Link, target)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut d = self.data.clone();
        d.extend_from_slice(&[0u8; 1024]);
        d
    }
}

/// A tempdir with `dest/` to unpack into and `outside/` (with a
/// sentinel file) that must never change.
struct Sandbox {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    before: Vec<(PathBuf, u64, u64)>,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let dest = base.join("dest");
    let outside = base.join("outside");
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), b"keep").unwrap();
    std::fs::create_dir(outside.join("etc")).unwrap();
    std::fs::write(outside.join("etc/passwd"), b"root:x:0:0").unwrap();
    let mut sb = Sandbox {
        _tmp: tmp,
        base,
        dest,
        outside,
        before: Vec::new(),
    };
    sb.before = sb.snapshot();
    sb
}

impl Sandbox {
    /// Everything under base except dest: path, size, mtime.
    fn snapshot(&self) -> Vec<(PathBuf, u64, u64)> {
        fn walk(p: &Path, skip: &Path, out: &mut Vec<(PathBuf, u64, u64)>) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let path = e.path();
                if path == skip {
                    continue;
                }
                let m = std::fs::symlink_metadata(&path).unwrap();
                out.push((path.clone(), m.len(), m.mtime() as u64));
                if m.is_dir() {
                    walk(&path, skip, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.base, &self.dest, &mut out);
        out.sort();
        out
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(
            self.snapshot(),
            self.before,
            "something changed outside dest"
        );
    }

    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.dest)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    match rustix::fs::fgetxattr(&fd, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(Errno::NODATA) => None,
        Err(e) => panic!("getxattr {name} on {}: {e}", path.display()),
    }
}

fn record(path: &Path) -> Option<String> {
    xattr(path, format::OVERRIDE_STAT_XATTR).map(|v| String::from_utf8(v).unwrap())
}

fn assert_refused(res: Result<UnpackStats, UnpackError>, needles: &[&str]) -> String {
    let err = res.expect_err("the layer must be refused");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
    }
    msg
}

fn open_dir(p: &Path) -> OwnedFd {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

mod attacks;
mod formats;
mod metadata;
