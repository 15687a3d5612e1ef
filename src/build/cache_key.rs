//! The build cache key of one step, and the file hasher it uses.
//!
//! A step's key is the sha256 of a canonical encoding of everything that
//! decides what the step produces:
//!
//! - the parent: the previous step's key, or the base image's manifest
//!   digest, or `scratch`;
//! - the instruction's text after variable substitution;
//! - the build args the step used (`substitute` reports them), sorted, as
//!   `name=value`: an arg the step did not use does not change its key;
//! - the platform (`linux/amd64`);
//! - SOURCE_DATE_EPOCH (empty without one): it sets the times in the layer
//!   and the history, so a build with another epoch (or none) makes
//!   another step;
//! - for `COPY`/`ADD`, exactly the files it takes: for each, its path,
//!   kind, mode, the uid/gid it will be written with, its size, a
//!   symlink's target, the sha256 of a regular file's content, and its
//!   mtime when the layer records mtimes (`mtimes_in_layer`), as the layer
//!   records it: clamped to SOURCE_DATE_EPOCH when there is one. So with an
//!   epoch, touching a file (to a time after the epoch), or copying the
//!   context elsewhere, keeps the key, and a cached layer is the one the
//!   step would write.
//!
//! The encoding starts with a version string ([`KEY_VERSION`]); every field
//! is a one-byte tag followed by its length (u64, little endian) and its
//! bytes, so no two different inputs encode alike (no separator can be
//! forged by a value). Change the version whenever the encoding changes.
//!
//! [`FileHasher`] hashes file contents through a descriptor the caller
//! opened (the executor opens them below the context root without
//! following symlinks), and keeps an index `path -> (dev, ino, size,
//! mtime, ctime) -> sha256` so an unchanged file is not read again; the
//! store keeps the index between builds (`store::build_cache`). A file
//! whose stat changed is read again. A file changed within
//! [`RACY_WINDOW_NS`] of being hashed is not put in the index, as a change
//! in the same timestamp tick would leave its stat unchanged (git's
//! "racy clean" problem).

use super::context::walk::{Entry, Kind};
use crate::oci::Digest;
use crate::oci::digest::Hasher;
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The first bytes hashed into every key; bump it when the encoding changes.
pub(crate) const KEY_VERSION: &str = "hutch-build-cache-key/v2";

/// A file changed less than this long before it was hashed is not indexed
/// (filesystem timestamps may be as coarse as 2 s, on FAT).
pub(crate) const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// What a step builds on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parent {
    /// `FROM scratch`.
    Scratch,
    /// The base image, by manifest digest.
    Image(Digest),
    /// The previous step, by its key.
    Step(Digest),
}

/// One file a `COPY`/`ADD` takes, as it will be written into the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileFact {
    /// Path relative to the context (as `select` gives it).
    pub(crate) path: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    /// Owner as written (after `--chown`), not as found in the context.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) mtime_sec: i64,
    pub(crate) mtime_nsec: u32,
    /// The sha256 of a regular file's content; `None` for the rest.
    pub(crate) content: Option<Digest>,
}

impl FileFact {
    /// A context entry written with owner `uid:gid`; `content` is the
    /// [`FileHasher`] digest of a regular file.
    pub(crate) fn new(entry: &Entry, uid: u32, gid: u32, content: Option<Digest>) -> FileFact {
        FileFact {
            path: entry.path.as_os_str().as_bytes().to_vec(),
            kind: entry.kind.clone(),
            mode: entry.mode,
            uid,
            gid,
            size: entry.size,
            mtime_sec: entry.mtime_sec,
            mtime_nsec: entry.mtime_nsec,
            content,
        }
    }
}

/// Everything a step's key depends on.
#[derive(Clone, Debug)]
pub(crate) struct StepInput<'a> {
    pub(crate) parent: &'a Parent,
    /// The instruction after substitution.
    pub(crate) instruction: &'a str,
    /// Every build arg in scope; only those in `used` are hashed.
    pub(crate) build_args: &'a BTreeMap<String, String>,
    /// The variables the instruction used (`substitute`'s `used`).
    pub(crate) used: &'a BTreeSet<String>,
    /// `os/arch[/variant]`.
    pub(crate) platform: &'a str,
    /// For `COPY`/`ADD`, the files it takes, in the order `select` gives.
    pub(crate) files: Option<&'a [FileFact]>,
    /// Whether the layer records the files' mtimes.
    pub(crate) mtimes_in_layer: bool,
    /// The build's SOURCE_DATE_EPOCH.
    pub(crate) source_date_epoch: Option<i64>,
}

/// Length-prefixed fields into a running hash.
struct Encoder(Hasher);

impl Encoder {
    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update(&[tag]);
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
    fn num(&mut self, tag: u8, n: u64) {
        self.field(tag, &n.to_le_bytes());
    }
}

/// The step's cache key.
pub(crate) fn step_key(input: &StepInput) -> Digest {
    let mut e = Encoder(Hasher::default());
    e.field(b'V', KEY_VERSION.as_bytes());
    match input.parent {
        Parent::Scratch => e.field(b'P', b"scratch"),
        Parent::Image(d) => e.field(b'P', format!("image {d}").as_bytes()),
        Parent::Step(d) => e.field(b'P', format!("step {d}").as_bytes()),
    }
    e.field(b'I', input.instruction.as_bytes());
    let used: Vec<(&String, &String)> = input
        .build_args
        .iter()
        .filter(|(name, _)| input.used.contains(*name))
        .collect();
    e.num(b'A', used.len() as u64);
    for (name, value) in used {
        e.field(b'a', format!("{name}={value}").as_bytes());
    }
    e.field(b'T', input.platform.as_bytes());
    let epoch = input
        .source_date_epoch
        .map_or(String::new(), |t| t.to_string());
    e.field(b'E', epoch.as_bytes());
    match input.files {
        None => e.field(b'F', b"none"),
        Some(files) => {
            e.num(b'F', files.len() as u64);
            e.num(b'M', input.mtimes_in_layer as u64);
            for f in files {
                encode_file(&mut e, f, input.mtimes_in_layer, input.source_date_epoch);
            }
        }
    }
    e.0.finish()
}

fn encode_file(e: &mut Encoder, f: &FileFact, mtimes: bool, epoch: Option<i64>) {
    e.field(b'p', &f.path);
    let (kind, target): (&[u8], &[u8]) = match &f.kind {
        Kind::File => (b"file", b""),
        Kind::Dir => (b"dir", b""),
        Kind::Symlink(t) => (b"symlink", t),
        Kind::Fifo => (b"fifo", b""),
        Kind::Socket => (b"socket", b""),
        Kind::CharDevice => (b"char", b""),
        Kind::BlockDevice => (b"block", b""),
    };
    e.field(b'k', kind);
    e.field(b'l', target);
    e.num(b'm', f.mode as u64);
    e.num(b'u', f.uid as u64);
    e.num(b'g', f.gid as u64);
    e.num(b's', f.size);
    e.field(
        b'c',
        f.content
            .as_ref()
            .map_or(&b""[..], |d| d.as_str().as_bytes()),
    );
    match (mtimes, epoch) {
        (false, _) => {}
        // The layer's whole seconds, clamped as copy_layer clamps them.
        (true, Some(t)) => e.field(b't', f.mtime_sec.min(t).to_string().as_bytes()),
        (true, None) => e.field(
            b't',
            format!("{}.{:09}", f.mtime_sec, f.mtime_nsec).as_bytes(),
        ),
    }
}

/// What identifies one version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

/// A file's stamp when it was hashed, and its content's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Indexed {
    pub(crate) stamp: FileStamp,
    pub(crate) sha256: Digest,
}

/// Path -> stamp -> content digest. Paths that are not UTF-8 are not
/// indexed (they are read every time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileIndex {
    pub(crate) files: BTreeMap<String, Indexed>,
}

/// Hashes file contents, reading only files whose stamp changed.
#[derive(Debug)]
pub(crate) struct FileHasher {
    index: FileIndex,
    racy_window_ns: i64,
    reads: u64,
}

fn stamp(fd: BorrowedFd, what: &Path) -> Result<(FileStamp, bool), String> {
    let st = rustix::fs::fstat(fd).map_err(|e| {
        format!(
            "examining {} to hash it: {}",
            what.display(),
            std::io::Error::from(e)
        )
    })?;
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    let stamp = FileStamp {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: ns(st.st_mtime, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime, st.st_ctime_nsec as i64),
    };
    let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
    Ok((stamp, regular))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl FileHasher {
    /// A hasher starting from `index` (empty, or loaded from the store).
    pub(crate) fn new(index: FileIndex) -> FileHasher {
        FileHasher {
            index,
            racy_window_ns: RACY_WINDOW_NS,
            reads: 0,
        }
    }

    /// The index, updated with what this hasher read, for the store to keep.
    pub(crate) fn into_index(self) -> FileIndex {
        self.index
    }

    /// How many files this hasher has read (the rest came from the index).
    pub(crate) fn files_read(&self) -> u64 {
        self.reads
    }

    /// The sha256 of the regular file open at `fd`, known under `path` (a
    /// host path naming it for the index, and in messages). The file is
    /// read from offset 0 with `pread`, so `fd`'s offset is left alone.
    pub(crate) fn hash(&mut self, path: &Path, fd: BorrowedFd) -> Result<Digest, String> {
        let (before, regular) = stamp(fd, path)?;
        if !regular {
            return Err(format!(
                "hashing {}: not a regular file (only regular files have content to hash)",
                path.display()
            ));
        }
        let key = path.to_str();
        if let Some(hit) = key.and_then(|k| self.index.files.get(k))
            && hit.stamp == before
        {
            return Ok(hit.sha256.clone());
        }
        let started = now_ns();
        let digest = self.read(path, fd)?;
        let (after, _) = stamp(fd, path)?;
        let settled =
            before.mtime_ns.max(before.ctime_ns) < started.saturating_sub(self.racy_window_ns);
        match key {
            // Changed while being read, or too recently: not trusted later.
            Some(k) if after == before && settled => {
                self.index.files.insert(
                    k.to_owned(),
                    Indexed {
                        stamp: before,
                        sha256: digest.clone(),
                    },
                );
            }
            Some(k) => {
                self.index.files.remove(k);
            }
            None => {}
        }
        Ok(digest)
    }

    fn read(&mut self, path: &Path, fd: BorrowedFd) -> Result<Digest, String> {
        self.reads += 1;
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; 128 * 1024];
        let mut offset = 0u64;
        loop {
            match rustix::io::pread(fd, &mut buf, offset) {
                Ok(0) => return Ok(hasher.finish()),
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    offset += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(format!(
                        "reading {} to hash it: {}",
                        path.display(),
                        std::io::Error::from(e)
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
impl FileHasher {
    fn with_racy_window(mut self, ns: i64) -> FileHasher {
        self.racy_window_ns = ns;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::context::ignore::Ignore;
    use crate::build::context::walk::Context;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    fn digest(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    /// The files of `source` in the context `dir`, hashed, owned by 0:0.
    fn facts(dir: &Path, source: &str, hasher: &mut FileHasher) -> Vec<FileFact> {
        let ctx = Context::open(dir).unwrap();
        let ignore = Ignore::parse("", None).unwrap();
        let sel = ctx.select(source, &ignore).unwrap();
        sel.entries
            .iter()
            .map(|e| {
                let content = (e.kind == Kind::File).then(|| {
                    let f = std::fs::File::open(dir.join(&e.path)).unwrap();
                    hasher.hash(&dir.join(&e.path), f.as_fd()).unwrap()
                });
                FileFact::new(e, 0, 0, content)
            })
            .collect()
    }

    fn write_context(dir: &Path) {
        std::fs::create_dir_all(dir.join("src/sub")).unwrap();
        std::fs::write(dir.join("src/a.txt"), "alpha").unwrap();
        std::fs::write(dir.join("src/sub/b.bin"), [0u8, 1, 2, 3]).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.join("src/link")).unwrap();
        for p in ["src", "src/sub"] {
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in ["src/a.txt", "src/sub/b.bin"] {
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }

    struct Inputs {
        parent: Parent,
        instruction: String,
        args: BTreeMap<String, String>,
        used: BTreeSet<String>,
        platform: String,
        files: Option<Vec<FileFact>>,
        mtimes: bool,
        epoch: Option<i64>,
    }

    impl Inputs {
        fn new(files: Option<Vec<FileFact>>) -> Inputs {
            Inputs {
                parent: Parent::Image(digest('a')),
                instruction: "COPY src /app".into(),
                args: [("VERSION", "1.0"), ("UNUSED", "x")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                used: ["VERSION".to_string()].into_iter().collect(),
                platform: "linux/amd64".into(),
                files,
                mtimes: false,
                epoch: None,
            }
        }
        fn key(&self) -> Digest {
            step_key(&StepInput {
                parent: &self.parent,
                instruction: &self.instruction,
                build_args: &self.args,
                used: &self.used,
                platform: &self.platform,
                files: self.files.as_deref(),
                mtimes_in_layer: self.mtimes,
                source_date_epoch: self.epoch,
            })
        }
    }

    fn context_key(dir: &Path) -> Digest {
        let mut h = FileHasher::new(FileIndex::default());
        Inputs::new(Some(facts(dir, "src", &mut h))).key()
    }

    #[test]
    fn same_inputs_same_key_even_in_another_directory() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        write_context(one.path());
        // A file in the way: `two`'s copies get other inode numbers.
        std::fs::write(two.path().join("spacer"), "s").unwrap();
        write_context(two.path());
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(two.path().join("src/a.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        use std::os::unix::fs::MetadataExt;
        let (m1, m2) = (
            std::fs::metadata(one.path().join("src/a.txt")).unwrap(),
            std::fs::metadata(two.path().join("src/a.txt")).unwrap(),
        );
        assert_ne!(m1.ino(), m2.ino());
        assert_ne!(m1.mtime(), m2.mtime());

        let k1 = context_key(one.path());
        assert_eq!(k1, context_key(one.path()), "twice the same");
        assert_eq!(
            k1,
            context_key(two.path()),
            "another directory, same content"
        );

        // Control: when the layer records mtimes, the touched file counts.
        let mtimes_key = |dir: &Path| {
            let mut h = FileHasher::new(FileIndex::default());
            let mut i = Inputs::new(Some(facts(dir, "src", &mut h)));
            i.mtimes = true;
            i.key()
        };
        assert_ne!(mtimes_key(one.path()), mtimes_key(two.path()));
        assert_ne!(mtimes_key(one.path()), k1);

        // With SOURCE_DATE_EPOCH the key has the mtimes as the layer has
        // them, clamped: equal when both are after the epoch, not when one
        // is before it.
        let epoch_key = |dir: &Path, epoch: i64| {
            let mut h = FileHasher::new(FileIndex::default());
            let mut i = Inputs::new(Some(facts(dir, "src", &mut h)));
            i.mtimes = true;
            i.epoch = Some(epoch);
            i.key()
        };
        assert_eq!(epoch_key(one.path(), 1000), epoch_key(two.path(), 1000));
        let later = 2_000_000;
        assert_ne!(epoch_key(one.path(), later), epoch_key(two.path(), later));
    }

    #[test]
    fn the_key_is_the_sha256_of_the_documented_encoding() {
        let parent = Parent::Scratch;
        let args = BTreeMap::new();
        let used = BTreeSet::new();
        let key = step_key(&StepInput {
            parent: &parent,
            instruction: "RUN true",
            build_args: &args,
            used: &used,
            platform: "linux/amd64",
            files: None,
            mtimes_in_layer: false,
            source_date_epoch: None,
        });
        let mut want = Vec::new();
        for (tag, bytes) in [
            (b'V', KEY_VERSION.as_bytes()),
            (b'P', b"scratch"),
            (b'I', b"RUN true"),
            (b'A', &0u64.to_le_bytes()),
            (b'T', b"linux/amd64"),
            (b'E', b""),
            (b'F', b"none"),
        ] {
            want.push(tag);
            want.extend((bytes.len() as u64).to_le_bytes());
            want.extend(bytes);
        }
        assert_eq!(key, Digest::of(&want));
    }

    #[test]
    fn any_input_changed_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path());
        let base = context_key(dir.path());
        let mut h = FileHasher::new(FileIndex::default());
        let files = facts(dir.path(), "src", &mut h);
        assert_eq!(Inputs::new(Some(files.clone())).key(), base, "control");

        let changed = |f: &dyn Fn(&mut Inputs)| {
            let mut i = Inputs::new(Some(files.clone()));
            f(&mut i);
            i.key()
        };
        let mut keys = vec![base.clone()];
        keys.push(changed(&|i| i.instruction = "COPY src /app2".into()));
        keys.push(changed(&|i| {
            i.args.insert("VERSION".into(), "1.1".into());
        }));
        keys.push(changed(&|i| i.parent = Parent::Image(digest('b'))));
        keys.push(changed(&|i| i.parent = Parent::Step(digest('a'))));
        keys.push(changed(&|i| i.parent = Parent::Scratch));
        keys.push(changed(&|i| i.platform = "linux/arm64".into()));
        keys.push(changed(&|i| i.epoch = Some(0)));
        keys.push(changed(&|i| i.epoch = Some(1_700_000_000)));
        keys.push(changed(&|i| i.files = None));
        keys.push(changed(&|i| i.files.as_mut().unwrap()[1].uid = 1000));
        keys.push(changed(&|i| {
            i.used.insert("UNUSED".into());
        }));
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "every change gives a key of its own");

        // An unused arg: changed, added or removed, the key stays.
        assert_eq!(
            changed(&|i| {
                i.args.insert("UNUSED".into(), "y".into());
            }),
            base
        );
        assert_eq!(
            changed(&|i| {
                i.args.insert("OTHER".into(), "z".into());
            }),
            base
        );
        assert_eq!(
            changed(&|i| {
                i.args.remove("UNUSED");
            }),
            base
        );
    }

    #[test]
    fn a_change_to_the_files_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write_context(dir.path());
        let d = dir.path();
        let mut keys = vec![context_key(d)];
        // One byte of one file, same size.
        std::fs::write(d.join("src/sub/b.bin"), [0u8, 1, 2, 4]).unwrap();
        keys.push(context_key(d));
        // A mode bit.
        std::fs::set_permissions(d.join("src/a.txt"), std::fs::Permissions::from_mode(0o645))
            .unwrap();
        keys.push(context_key(d));
        // A file added.
        std::fs::write(d.join("src/sub/c"), "").unwrap();
        keys.push(context_key(d));
        // A symlink's target.
        std::fs::remove_file(d.join("src/link")).unwrap();
        std::os::unix::fs::symlink("a.txX", d.join("src/link")).unwrap();
        keys.push(context_key(d));
        // A file removed.
        std::fs::remove_file(d.join("src/sub/c")).unwrap();
        keys.push(context_key(d));
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "{keys:?}");

        // Control: a file outside what the COPY takes changes nothing.
        let before = context_key(d);
        std::fs::write(d.join("elsewhere"), "e").unwrap();
        assert_eq!(context_key(d), before);
    }

    fn hash_file(h: &mut FileHasher, path: &Path) -> Digest {
        let f = std::fs::File::open(path).unwrap();
        h.hash(path, f.as_fd()).unwrap()
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_a_changed_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "aaaa").unwrap();
        let mut h = FileHasher::new(FileIndex::default()).with_racy_window(0);
        assert_eq!(hash_file(&mut h, &path), Digest::of(b"aaaa"));
        assert_eq!(h.files_read(), 1);
        assert_eq!(hash_file(&mut h, &path), Digest::of(b"aaaa"));
        assert_eq!(h.files_read(), 1, "unchanged: from the index");

        // Through a saved and reloaded index too.
        let index = h.into_index();
        let json = serde_json::to_vec(&index).unwrap();
        let mut h = FileHasher::new(serde_json::from_slice(&json).unwrap()).with_racy_window(0);
        assert_eq!(hash_file(&mut h, &path), Digest::of(b"aaaa"));
        assert_eq!(h.files_read(), 0);

        // Same size, new content and mtime: read again.
        std::fs::write(&path, "bbbb").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(hash_file(&mut h, &path), Digest::of(b"bbbb"));
        assert_eq!(h.files_read(), 1);
        assert_eq!(hash_file(&mut h, &path), Digest::of(b"bbbb"));
        assert_eq!(h.files_read(), 1);
    }

    #[test]
    fn a_file_changed_just_now_is_not_trusted_to_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "aaaa").unwrap();
        // Written within the racy window (an hour here, so that a slow
        // machine cannot leave it): read every time.
        let mut h = FileHasher::new(FileIndex::default()).with_racy_window(3_600_000_000_000);
        hash_file(&mut h, &path);
        hash_file(&mut h, &path);
        assert_eq!(h.files_read(), 2);
        assert!(h.into_index().files.is_empty());
        // Control: with no window, the second hash is from the index.
        let mut h = FileHasher::new(FileIndex::default()).with_racy_window(0);
        hash_file(&mut h, &path);
        hash_file(&mut h, &path);
        assert_eq!(h.files_read(), 1);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_read_every_time() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        let plain = dir.path().join("cafe");
        for p in [&odd, &plain] {
            std::fs::write(p, "same").unwrap();
        }
        let mut h = FileHasher::new(FileIndex::default()).with_racy_window(0);
        assert_eq!(hash_file(&mut h, &odd), Digest::of(b"same"));
        assert_eq!(hash_file(&mut h, &odd), Digest::of(b"same"));
        assert_eq!(h.files_read(), 2);
        // Control: the UTF-8 name is read once.
        hash_file(&mut h, &plain);
        hash_file(&mut h, &plain);
        assert_eq!(h.files_read(), 3);
        assert_eq!(h.into_index().files.len(), 1);
    }

    #[test]
    fn only_regular_files_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let mut h = FileHasher::new(FileIndex::default());
        let err = h.hash(dir.path(), d.as_fd()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        // Control: a regular file in it is.
        std::fs::write(dir.path().join("f"), "x").unwrap();
        assert_eq!(hash_file(&mut h, &dir.path().join("f")), Digest::of(b"x"));
    }
}
