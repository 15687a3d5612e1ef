//! The entry list of a rootfs digest, as kept in the store
//! (`store::rootfs_index`): what `hutch verify` compares a tree with when
//! its digest is not the one a lock records.
//!
//! The encoding (format 1), all numbers unsigned LEB128 varints, a byte
//! string a varint length and the bytes:
//!
//! * the magic `hutch rootfs index\n`, the format (1), the rootfs digest's
//!   version ([`ROOTFS_DIGEST_VERSION`]) and the digest itself (a byte
//!   string, `sha256:<hex>`), then the number of entries;
//! * each entry, in digest order: its path as the length it shares with
//!   the previous entry's path and the byte string that follows; its kind
//!   (0 directory, 1 file then size and the 32 bytes of its content's
//!   sha256, 2 symlink then target, 3 fifo, 4 character and 5 block device
//!   then major and minor); mode, uid, gid; the number of xattrs and each
//!   name and value;
//! * the 32 bytes of the sha256 of everything before.
//!
//! Decoding checks all of it (magic, versions, digest, checksum, paths in
//! strictly increasing order, nothing left over): bytes that do not
//! decode are an absent index, never an error.

use super::{Entry, EntryKind, ROOTFS_DIGEST_VERSION, RootfsDigest};
use crate::oci::Digest;
use crate::store::Store;
use anyhow::Result;
use sha2::{Digest as _, Sha256};

const MAGIC: &[u8] = b"hutch rootfs index\n";
const FORMAT: u64 = 1;

/// Keep the entry list of `tree` in `store`, unless a good one is there.
pub fn save_index(store: &Store, tree: &RootfsDigest) -> Result<()> {
    if load_index(store, &tree.digest).is_some() {
        return Ok(());
    }
    store.write_rootfs_index(&tree.digest, &encode(&tree.digest, &tree.entries))
}

/// The entry list of the tree whose rootfs digest is `rootfs`, if the
/// store holds a good one.
pub fn load_index(store: &Store, rootfs: &Digest) -> Option<Vec<Entry>> {
    let bytes = store.read_rootfs_index(rootfs)?;
    match decode(&bytes, rootfs) {
        Ok(entries) => Some(entries),
        Err(why) => {
            tracing::debug!("the rootfs index of {rootfs} is not usable: {why}");
            None
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_sha256(out: &mut Vec<u8>, d: &Digest) {
    // A Digest is always sha256 with 64 lowercase hex digits.
    let raw = hex::decode(d.hex()).unwrap_or_else(|_| vec![0; 32]);
    out.extend_from_slice(&raw);
}

/// The bytes of `entries`, the tree whose rootfs digest is `rootfs`.
pub(super) fn encode(rootfs: &Digest, entries: &[Entry]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_varint(&mut out, FORMAT);
    put_varint(&mut out, u64::from(ROOTFS_DIGEST_VERSION));
    put_bytes(&mut out, rootfs.as_str().as_bytes());
    put_varint(&mut out, entries.len() as u64);
    let mut prev: &[u8] = b"";
    for e in entries {
        let shared = prev.iter().zip(&e.path).take_while(|(a, b)| a == b).count();
        put_varint(&mut out, shared as u64);
        put_bytes(&mut out, &e.path[shared..]);
        prev = &e.path;
        match &e.kind {
            EntryKind::Dir => out.push(0),
            EntryKind::File { size, sha256 } => {
                out.push(1);
                put_varint(&mut out, *size);
                put_sha256(&mut out, sha256);
            }
            EntryKind::Symlink { target } => {
                out.push(2);
                put_bytes(&mut out, target);
            }
            EntryKind::Fifo => out.push(3),
            EntryKind::Char { major, minor } | EntryKind::Block { major, minor } => {
                out.push(if matches!(e.kind, EntryKind::Char { .. }) {
                    4
                } else {
                    5
                });
                put_varint(&mut out, u64::from(*major));
                put_varint(&mut out, u64::from(*minor));
            }
        }
        for v in [e.mode, e.uid, e.gid] {
            put_varint(&mut out, u64::from(v));
        }
        put_varint(&mut out, e.xattrs.len() as u64);
        for (name, value) in &e.xattrs {
            put_bytes(&mut out, name);
            put_bytes(&mut out, value);
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(sum.as_slice());
    out
}

/// Reads the encoding, every step checked.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.data.len() {
            return Err("it ends early".into());
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("a number is too large".into());
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number is too long".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.varint()?).map_err(|_| "a 32-bit number is too large".to_string())
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.data.len() => Ok(n),
            _ => Err(format!("a length ({n}) is past the end")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }
}

/// The entries of the index bytes `data`, which must be those of `rootfs`.
pub(super) fn decode(data: &[u8], rootfs: &Digest) -> Result<Vec<Entry>, String> {
    if data.len() < MAGIC.len() + 32 || !data.starts_with(MAGIC) {
        return Err("not a rootfs index".into());
    }
    let (body, sum) = data.split_at(data.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("its checksum does not match (damaged)".into());
    }
    let mut r = Reader {
        data: &body[MAGIC.len()..],
    };
    let format = r.varint()?;
    if format != FORMAT {
        return Err(format!("format {format}, not {FORMAT}"));
    }
    let version = r.varint()?;
    if version != u64::from(ROOTFS_DIGEST_VERSION) {
        return Err(format!("of rootfs digest version {version}"));
    }
    let named = r.bytes()?;
    if named != rootfs.as_str().as_bytes() {
        return Err(format!(
            "it lists {}",
            String::from_utf8_lossy(named).escape_debug()
        ));
    }
    let count = r.varint()?;
    // Every entry takes at least 6 bytes: no allocation beyond the data.
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(r.data.len()));
    let mut prev: Vec<u8> = Vec::new();
    for i in 0..count {
        let shared = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
        if shared > prev.len() {
            return Err(format!("entry {i} shares more than the previous path"));
        }
        let mut path = prev[..shared].to_vec();
        path.extend_from_slice(r.bytes()?);
        if i > 0 && path <= prev {
            return Err(format!("entry {i} is out of order"));
        }
        let kind = match r.byte()? {
            0 => EntryKind::Dir,
            1 => {
                let size = r.varint()?;
                let sha256 =
                    Digest::from_hex(&hex::encode(r.take(32)?)).map_err(|e| e.to_string())?;
                EntryKind::File { size, sha256 }
            }
            2 => EntryKind::Symlink {
                target: r.bytes()?.to_vec(),
            },
            3 => EntryKind::Fifo,
            4 => EntryKind::Char {
                major: r.u32()?,
                minor: r.u32()?,
            },
            5 => EntryKind::Block {
                major: r.u32()?,
                minor: r.u32()?,
            },
            k => return Err(format!("entry {i} has an unknown kind {k}")),
        };
        let (mode, uid, gid) = (r.u32()?, r.u32()?, r.u32()?);
        let n = r.len()?;
        let mut xattrs = Vec::with_capacity(n);
        for _ in 0..n {
            xattrs.push((r.bytes()?.to_vec(), r.bytes()?.to_vec()));
        }
        prev.clone_from(&path);
        entries.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            xattrs,
        });
    }
    if !r.data.is_empty() {
        return Err(format!("{} bytes are left over", r.data.len()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        }
    }

    fn sample() -> Vec<Entry> {
        let mut su = entry(
            "bin/su",
            EntryKind::File {
                size: 1 << 40,
                sha256: Digest::of(b"su"),
            },
        );
        su.mode = 0o4755;
        su.uid = u32::MAX;
        su.gid = 1 << 21;
        su.xattrs = vec![
            (b"security.capability".to_vec(), b"\x01\x00\n=".to_vec()),
            (b"user.empty".to_vec(), Vec::new()),
        ];
        vec![
            entry("", EntryKind::Dir),
            entry("bin", EntryKind::Dir),
            su,
            entry(
                "bin/sx",
                EntryKind::Symlink {
                    target: vec![b't'; 300],
                },
            ),
            entry(
                "dev/null",
                EntryKind::Char {
                    major: 1,
                    minor: u32::MAX,
                },
            ),
            entry("dev/sda", EntryKind::Block { major: 8, minor: 0 }),
            entry("fifo", EntryKind::Fifo),
            entry(
                "\u{e9}t\u{e9}/\u{ff}",
                EntryKind::File {
                    size: 0,
                    sha256: Digest::of(b""),
                },
            ),
        ]
    }

    #[test]
    fn rootfs_index_round_trips() {
        let d = Digest::of(b"tree");
        let entries = sample();
        let bytes = encode(&d, &entries);
        assert_eq!(decode(&bytes, &d), Ok(entries.clone()));
        // Shared prefixes keep it small: "dev/null" then "dev/sda" writes
        // "dev/" once.
        assert_eq!(bytes.windows(4).filter(|w| *w == b"dev/").count(), 1);
        assert_eq!(bytes.windows(3).filter(|w| *w == b"sda").count(), 1);
        assert_eq!(decode(&encode(&d, &[]), &d), Ok(Vec::new()));
    }

    #[test]
    fn rootfs_index_damage_is_refused() {
        let d = Digest::of(b"tree");
        let bytes = encode(&d, &sample());
        // Another digest's index is not this one's.
        assert!(decode(&bytes, &Digest::of(b"other")).is_err());
        // Any flipped byte, any cut, anything added: refused, no panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            assert!(decode(&b, &d).is_err(), "byte {i} flipped");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], &d).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &d).is_err());
        // Well-formed bytes (checksum right) with bad content: refused too.
        let reseal = |mut body: Vec<u8>| {
            let sum = Sha256::digest(&body);
            body.extend_from_slice(sum.as_slice());
            body
        };
        let body = &bytes[..bytes.len() - 32];
        let mut extra = body.to_vec();
        extra.push(0);
        assert_eq!(
            decode(&reseal(extra), &d),
            Err("1 bytes are left over".into())
        );
        let mut huge = MAGIC.to_vec();
        put_varint(&mut huge, FORMAT);
        put_varint(&mut huge, u64::from(ROOTFS_DIGEST_VERSION));
        put_bytes(&mut huge, d.as_str().as_bytes());
        put_varint(&mut huge, u64::MAX);
        assert!(decode(&reseal(huge), &d).is_err(), "a huge count");
        // Out of order entries.
        let mut swapped = sample();
        swapped.swap(1, 2);
        assert!(
            decode(&encode(&d, &swapped), &d)
                .unwrap_err()
                .contains("out of order")
        );
    }

    #[test]
    fn rootfs_index_in_a_store_damaged_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let tree = RootfsDigest {
            digest: Digest::of(b"tree"),
            entries: sample(),
        };
        assert_eq!(load_index(&store, &tree.digest), None);
        save_index(&store, &tree).unwrap();
        assert_eq!(load_index(&store, &tree.digest), Some(sample()));
        let path = dir.path().join("s/rootfs-index").join(tree.digest.hex());
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load_index(&store, &tree.digest), None, "damaged");
        // Saving again replaces a damaged file.
        save_index(&store, &tree).unwrap();
        assert_eq!(load_index(&store, &tree.digest), Some(sample()));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(load_index(&store, &tree.digest), None, "empty");
    }
}
