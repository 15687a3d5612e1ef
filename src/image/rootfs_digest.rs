//! The rootfs digest of an image: one sha256 that names the merged root
//! filesystem a container of the image sees, the same on every machine,
//! store and file system (what `hutch verify` checks and a lock records).
//!
//! The image's unpacked layers (`layers/sha256/<hex>/root/`, in the format
//! of `overlay::format`) are read with [`upper::walk_layer`] and merged in
//! memory, bottom to top, with the overlay's rules: a whiteout (a 0:0
//! character device or a `.wh.NAME` file) deletes a name of the layers
//! below, an opaque directory (`user.overlay.opaque`, or a `.wh..wh..opq`
//! file in it) hides what the layers below have under it, a file, symlink
//! or fifo replaces a lower name (a whole directory included) and
//! directories merge, the highest one giving the attributes. Nothing is
//! mounted and nothing is written.
//!
//! The entries a digest covers (paths, kinds, attributes, each file's size
//! and sha256) can be kept in the store by the digest ([`save_index`],
//! encoded in `index.rs`), so a tree can later be compared path by path
//! ([`first_difference`]) with one whose layers are no longer at hand.
//!
//! # The digest, version 1 ([`ROOTFS_DIGEST_VERSION`])
//!
//! This is a promise: locks record these digests, so any change to what
//! follows is a new version, and a lock says which version it holds.
//!
//! The digest is `sha256:` and the lowercase hex sha256 of a tar stream,
//! written to the hash and never to disk. The stream holds, for each
//! entry of the merged tree, in order:
//!
//! * **Entries**: the root directory and every name the container sees.
//!   Hard links are not kept: each name is its own file with its content.
//!   The format's own names (`.wh.*`) are never entries. Sockets are not
//!   stored in layers, so never appear.
//! * **Order**: by the bytes of the path relative to the root (so a
//!   directory comes before what it holds); the root, whose relative path
//!   is empty, first. E.g. `a`, `a-b`, `a/b`.
//! * **Attributes** are the true ones a container sees: uid, gid and mode
//!   (the `0o7777` bits) from the layer's `user.containers.override_stat`
//!   record, or 0, 0 and the mode on disk without one; symlinks and fifos
//!   carry no record and are 0:0, a symlink's mode is `0o777`; device
//!   nodes are their recorded type and numbers. **Modification times are
//!   not part of the digest** (every header says 0): they are part of an
//!   image, but the digest is of the tree's content and identity, and a
//!   layer made again with other times is the same environment.
//! * **Extended attributes** the container sees, as
//!   `overlay::format::presented_xattr_name` gives them (the format's
//!   reserved `user.containers.*`, `user.overlay.*`, `user.fuseoverlayfs.*`,
//!   `user.hutch.*` left out; `user.hutch.xattr.X` given as `X`), sorted by
//!   the bytes of their names.
//!
//! Each entry is written as, in this order:
//!
//! 1. for a symlink whose target is longer than 100 bytes, a GNU
//!    long-link entry: a header named `././@LongLink`, type `K`, size the
//!    target's length + 1, then the target and one NUL byte, padded with
//!    NULs to a multiple of 512;
//! 2. if its tar name (below) is longer than 100 bytes, the same with
//!    type `L` and the name;
//! 3. if it has extended attributes, a PAX extended header: a header named
//!    `././@PaxHeader`, type `x`, its data the records
//!    `"<len> SCHILY.xattr.<name>=<value>\n"` in name order (`<len>` the
//!    decimal length of the whole record, itself included; the value raw
//!    bytes), padded with NULs to a multiple of 512;
//! 4. the entry's header, then for a regular file its content padded with
//!    NULs to a multiple of 512.
//!
//! The tar name is `./` followed by the relative path, with a `/` added
//! for a directory (the root is `./`). Every header is a 512-byte GNU
//! header, all bytes NUL except: name (offset 0, 100 bytes: the name, or
//! its first 100 bytes when a long-name entry comes before; a name of
//! exactly 100 bytes has no NUL); mode (100,
//! 8), uid (108, 8), gid (116, 8): 7 octal digits and a NUL (uid and gid
//! above `0o7777777` in GNU base-256: byte `0x80` and the value big-endian
//! in the other 7); size (124, 12): 11 octal digits and a NUL (base-256
//! above `0o77777777777`), 0 for everything but regular files and the
//! extension entries; mtime (136, 12): `00000000000` and a NUL; checksum
//! (148, 8): 6 octal digits, a NUL and a space, the sum of the header's
//! bytes with this field as 8 spaces; type (156): `0` regular file, `2`
//! symlink, `3` character device, `4` block device, `5` directory, `6`
//! fifo; link name (157, 100): a symlink's target (its first 100 bytes
//! with a `K` entry); magic (257, 8): `ustar  \0` (GNU); user and group
//! names: empty; devmajor (329, 8) and devminor (337, 8): 7 octal digits
//! and a NUL for devices only. Extension headers have mode, uid and gid
//! `0000000`. The stream ends with two 512-byte blocks of NULs.
//!
//! These are the bytes Python's `tarfile` writes with `format=GNU_FORMAT`
//! for the same `TarInfo`s (`TarInfo.tobuf`; mtime 0, empty `uname` and
//! `gname`), which the integration test `tests/rootfs_digest.rs` uses as
//! an independent computation; GNU tar lists such a stream
//! (`tar -tv --xattrs`).

use crate::image::upper::{self, Kind};
use crate::oci::Digest;
use crate::oci::digest::Hasher;
use crate::store::{Store, StoredImage};
use anyhow::{Context, Result, bail};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

mod index;
pub use index::{load_index, save_index};

/// The version of the digest's definition (the module documentation).
pub const ROOTFS_DIGEST_VERSION: u32 = 1;

/// What an entry of the merged tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64, sha256: Digest },
    Symlink { target: Vec<u8> },
    Fifo,
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
}

impl EntryKind {
    fn name(&self) -> &'static str {
        match self {
            EntryKind::Dir => "a directory",
            EntryKind::File { .. } => "a regular file",
            EntryKind::Symlink { .. } => "a symlink",
            EntryKind::Fifo => "a fifo",
            EntryKind::Char { .. } => "a character device",
            EntryKind::Block { .. } => "a block device",
        }
    }
}

/// One name of the merged tree, with the attributes the digest covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the root, no leading `/`; empty for the root.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// As the container sees them, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The path as shown to users: `/etc/passwd`, `/` for the root.
    pub fn shown(&self) -> String {
        shown(&self.path)
    }
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// An image's rootfs digest and the entries it covers (in digest order).
#[derive(Debug)]
pub struct RootfsDigest {
    pub digest: Digest,
    pub entries: Vec<Entry>,
}

/// The rootfs digest of `image`, from its unpacked layers in `store`.
/// The caller holds the store lock (shared).
pub fn image_rootfs_digest(store: &Store, image: &StoredImage) -> Result<RootfsDigest> {
    let mut lowers = Vec::with_capacity(image.layers.len());
    for l in image.layers.iter().rev() {
        if !store.has_layer(&l.diff_id) {
            bail!(
                "layer {} of image {} is not unpacked in the store; `hutch check --store` \
                 tells more, and loading or pulling the image again brings it back",
                l.diff_id,
                image.manifest_digest
            );
        }
        lowers.push(store.layer_root(&l.diff_id));
    }
    layers_digest(&lowers)
        .with_context(|| format!("computing the rootfs digest of {}", image.manifest_digest))
}

/// The rootfs digest of the layer dirs `lowers` (top first, as the
/// overlay takes them).
pub fn layers_digest(lowers: &[PathBuf]) -> Result<RootfsDigest> {
    let bottom_up: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
    let tree = merge(&bottom_up)?;
    let mut hasher = Hasher::default();
    let entries = write_tar(&bottom_up, tree, &mut hasher)?;
    Ok(RootfsDigest {
        digest: hasher.finish(),
        entries,
    })
}

// ---------------------------------------------------------------------------
// The merged tree
// ---------------------------------------------------------------------------

/// A name of the merged tree: which layer (bottom = 0) it comes from.
#[derive(Debug)]
struct Node {
    layer: usize,
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug)]
enum NodeKind {
    Dir,
    /// Content read from the layer when the stream is written.
    File,
    Symlink(Vec<u8>),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
}

type Tree = BTreeMap<Vec<u8>, Node>;

fn node(layer: usize, e: upper::Entry) -> Option<Node> {
    let kind = match e.kind {
        Kind::Dir { .. } => NodeKind::Dir,
        Kind::File { .. } => NodeKind::File,
        Kind::Symlink { target } => NodeKind::Symlink(target),
        Kind::Fifo => NodeKind::Fifo,
        Kind::Char { major, minor } => NodeKind::Char(major, minor),
        Kind::Block { major, minor } => NodeKind::Block(major, minor),
        Kind::Whiteout => return None,
    };
    Some(Node {
        layer,
        kind,
        mode: e.mode & 0o7777,
        uid: e.uid,
        gid: e.gid,
        xattrs: e.xattrs,
    })
}

/// Remove from `tree` the descendants of `path` (not `path` itself) that
/// come from layers below `layer`.
fn remove_lower_descendants(tree: &mut Tree, path: &[u8], layer: usize) {
    let mut lo = path.to_vec();
    lo.push(b'/');
    let mut hi = path.to_vec();
    hi.push(b'/' + 1);
    let doomed: Vec<Vec<u8>> = tree
        .range(lo..hi)
        .filter(|(_, n)| n.layer < layer)
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        tree.remove(&k);
    }
}

/// Remove `path` and its descendants if they come from below `layer`.
fn remove_lower(tree: &mut Tree, path: &[u8], layer: usize) {
    if tree.get(path).is_some_and(|n| n.layer < layer) {
        tree.remove(path);
    }
    remove_lower_descendants(tree, path, layer);
}

/// One layer's entry applied over the tree of the layers below it. A
/// layer's whiteouts and opaque marks only hide lower layers' names, so
/// the result does not depend on the order of a layer's own entries.
fn apply(tree: &mut Tree, layer: usize, e: upper::Entry) {
    let path = e.path.clone();
    let opaque = matches!(e.kind, Kind::Dir { opaque: true });
    let Some(new) = node(layer, e) else {
        remove_lower(tree, &path, layer);
        return;
    };
    match (&new.kind, tree.get(&path)) {
        // A directory over a directory: they merge; the higher one's
        // attributes, the lower one's names unless opaque.
        (NodeKind::Dir, Some(old)) if matches!(old.kind, NodeKind::Dir) => {
            if opaque {
                remove_lower_descendants(tree, &path, layer);
            }
        }
        _ => remove_lower(tree, &path, layer),
    }
    tree.insert(path, new);
}

fn merge(bottom_up: &[&Path]) -> Result<Tree> {
    let mut tree = Tree::new();
    for (i, layer) in bottom_up.iter().enumerate() {
        let root = upper::walk_layer(layer, &mut |e| {
            apply(&mut tree, i, e);
            Ok(())
        })?;
        // The root: the highest layer's attributes (every layer has one).
        if let Some(n) = node(i, root) {
            tree.insert(Vec::new(), n);
        }
    }
    Ok(tree)
}

// ---------------------------------------------------------------------------
// The canonical tar stream
// ---------------------------------------------------------------------------

const BLOCK: usize = 512;
const LONG_NAME: &[u8] = b"././@LongLink";
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// Write the stream for `tree` (its files read from `bottom_up[node.layer]`)
/// to `out`; returns the entries, with their files' sizes and hashes.
fn write_tar(bottom_up: &[&Path], tree: Tree, out: &mut dyn Write) -> Result<Vec<Entry>> {
    let mut roots: Vec<Option<OwnedFd>> = (0..bottom_up.len()).map(|_| None).collect();
    let mut entries = Vec::with_capacity(tree.len());
    let mut buf = vec![0u8; 1 << 20];
    for (path, n) in tree {
        let mut name = b"./".to_vec();
        name.extend_from_slice(&path);
        if matches!(n.kind, NodeKind::Dir) && !path.is_empty() {
            name.push(b'/');
        }
        let mut file = None;
        let (typeflag, size, link, dev, kind) = match n.kind {
            NodeKind::Dir => (b'5', 0, None, None, EntryKind::Dir),
            NodeKind::Symlink(target) => (
                b'2',
                0,
                Some(target.clone()),
                None,
                EntryKind::Symlink { target },
            ),
            NodeKind::Fifo => (b'6', 0, None, None, EntryKind::Fifo),
            NodeKind::Char(major, minor) => (
                b'3',
                0,
                None,
                Some((major, minor)),
                EntryKind::Char { major, minor },
            ),
            NodeKind::Block(major, minor) => (
                b'4',
                0,
                None,
                Some((major, minor)),
                EntryKind::Block { major, minor },
            ),
            NodeKind::File => {
                let root = match &mut roots[n.layer] {
                    Some(fd) => fd,
                    slot => slot.insert(open_root(bottom_up[n.layer])?),
                };
                let (fd, size) = open_file(root, &path).with_context(|| {
                    format!(
                        "opening {} in {}",
                        shown(&path),
                        bottom_up[n.layer].display()
                    )
                })?;
                file = Some(fd);
                // The hash is filled in once the content is read.
                let placeholder = EntryKind::File {
                    size,
                    sha256: Digest::of(b""),
                };
                (b'0', size, None, None, placeholder)
            }
        };
        if let Some(l) = &link
            && l.len() > 100
        {
            write_extension(out, LONG_NAME, b'K', &nul_terminated(l))?;
        }
        if name.len() > 100 {
            write_extension(out, LONG_NAME, b'L', &nul_terminated(&name))?;
        }
        if !n.xattrs.is_empty() {
            write_extension(out, PAX_NAME, b'x', &pax_records(&n.xattrs))?;
        }
        let h = Header {
            name: &name,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            size,
            typeflag,
            link: link.as_deref().unwrap_or(b""),
            dev,
        };
        out.write_all(&h.encode())?;
        let kind = match (file, kind) {
            (Some(mut f), EntryKind::File { size, .. }) => {
                let sha256 = copy_content(&mut f, size, out, &mut buf)
                    .with_context(|| format!("reading {}", shown(&path)))?;
                EntryKind::File { size, sha256 }
            }
            (_, k) => k,
        };
        entries.push(Entry {
            path,
            kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            xattrs: n.xattrs,
        });
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    Ok(entries)
}

fn open_root(layer: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        layer,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening the layer dir {}", layer.display()))
}

/// Open the regular file `path` below `root`, following no symlink.
fn open_file(root: &OwnedFd, path: &[u8]) -> Result<(std::fs::File, u64)> {
    let fd = rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(std::io::Error::from)?;
    let st = rustix::fs::fstat(&fd).map_err(std::io::Error::from)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        bail!("no longer a regular file: the layer changed while it was read");
    }
    Ok((std::fs::File::from(fd), st.st_size.max(0) as u64))
}

/// Copy exactly `size` bytes of `f` to `out`, padded to a block; their
/// sha256.
fn copy_content(
    f: &mut std::fs::File,
    size: u64,
    out: &mut dyn Write,
    buf: &mut [u8],
) -> Result<Digest> {
    let mut content = Hasher::default();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            bail!("the file ended {left} bytes early: the layer changed while it was read");
        }
        content.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    pad(out, size)?;
    Ok(content.finish())
}

fn pad(out: &mut dyn Write, len: u64) -> std::io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

fn nul_terminated(s: &[u8]) -> Vec<u8> {
    let mut v = s.to_vec();
    v.push(0);
    v
}

/// An extension entry (`L`, `K` or `x`): header and padded data.
fn write_extension(out: &mut dyn Write, name: &[u8], typeflag: u8, data: &[u8]) -> Result<()> {
    let h = Header {
        name,
        mode: 0,
        uid: 0,
        gid: 0,
        size: data.len() as u64,
        typeflag,
        link: b"",
        dev: None,
    };
    out.write_all(&h.encode())?;
    out.write_all(data)?;
    pad(out, data.len() as u64)?;
    Ok(())
}

/// PAX records `"<len> SCHILY.xattr.<name>=<value>\n"`, in the given
/// (sorted) order.
fn pax_records(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        let mut body = b" SCHILY.xattr.".to_vec();
        body.extend_from_slice(name);
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
        // The length counts its own digits.
        let mut len = body.len() + 1;
        while body.len() + len.to_string().len() != len {
            len = body.len() + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(&body);
    }
    out
}

struct Header<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    typeflag: u8,
    link: &'a [u8],
    dev: Option<(u32, u32)>,
}

impl Header<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        copy_truncated(&mut h[0..100], self.name);
        octal(&mut h[100..108], u64::from(self.mode & 0o7777));
        numeric(&mut h[108..116], u64::from(self.uid));
        numeric(&mut h[116..124], u64::from(self.gid));
        numeric(&mut h[124..136], self.size);
        octal(&mut h[136..148], 0);
        h[156] = self.typeflag;
        copy_truncated(&mut h[157..257], self.link);
        h[257..265].copy_from_slice(b"ustar  \0");
        if let Some((major, minor)) = self.dev {
            octal(&mut h[329..337], u64::from(major));
            octal(&mut h[337..345], u64::from(minor));
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}");
        h[148..154].copy_from_slice(text.as_bytes());
        h[154] = 0;
        h[155] = b' ';
        h
    }
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// `value` as `field.len() - 1` octal digits and a NUL. Only called with
/// values that fit (device numbers fit in 7 octal digits: 21 bits, and
/// Linux's are 12 and 20 bits).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&bytes[start..]);
    field[digits] = 0;
}

/// Octal when it fits, else GNU base-256 (`0x80`, then big-endian).
fn numeric(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits * 3 >= 64 || value < 1u64 << (3 * digits) {
        octal(field, value);
        return;
    }
    field.fill(0);
    field[0] = 0x80;
    let be = value.to_be_bytes();
    let len = field.len();
    let take = (len - 1).min(be.len());
    field[len - take..].copy_from_slice(&be[be.len() - take..]);
}

// ---------------------------------------------------------------------------
// Comparing two trees
// ---------------------------------------------------------------------------

/// Where two trees differ first: a path and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// As shown to users: `/etc/passwd`.
    pub path: String,
    /// `content differs (...)`, `only in the first tree`, ...
    pub how: String,
    /// The path is in both trees (not only in one).
    pub in_both: bool,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.how)
    }
}

/// The first path (in digest order) at which the entry lists `a` and `b`
/// differ, and how: `/etc/passwd: content differs (...)`, `/x: only in
/// the first tree`. `None` when they are equal.
pub fn first_difference(a: &[Entry], b: &[Entry]) -> Option<Difference> {
    first_difference_of(a, "the first tree", b, "the second tree")
}

/// [`first_difference`], naming the trees `a_name` and `b_name` where a
/// path is only in one (`only in hutch.lock's tree`).
pub fn first_difference_of(
    a: &[Entry],
    a_name: &str,
    b: &[Entry],
    b_name: &str,
) -> Option<Difference> {
    let only = |e: &Entry, name: &str| Difference {
        path: e.shown(),
        how: format!("only in {name}"),
        in_both: false,
    };
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => return None,
            (Some(x), None) => return Some(only(x, a_name)),
            (None, Some(y)) => return Some(only(y, b_name)),
            (Some(x), Some(y)) => match x.path.cmp(&y.path) {
                std::cmp::Ordering::Less => return Some(only(x, a_name)),
                std::cmp::Ordering::Greater => return Some(only(y, b_name)),
                std::cmp::Ordering::Equal => {
                    if let Some(how) = entry_difference(x, y) {
                        return Some(Difference {
                            path: x.shown(),
                            how,
                            in_both: true,
                        });
                    }
                    i += 1;
                    j += 1;
                }
            },
        }
    }
}

/// How two entries of the same path differ.
fn entry_difference(x: &Entry, y: &Entry) -> Option<String> {
    match (&x.kind, &y.kind) {
        (
            EntryKind::File {
                size: s1,
                sha256: h1,
            },
            EntryKind::File {
                size: s2,
                sha256: h2,
            },
        ) => {
            if s1 != s2 || h1 != h2 {
                return Some(format!(
                    "content differs ({s1} bytes, {h1} vs {s2} bytes, {h2})"
                ));
            }
        }
        (EntryKind::Symlink { target: t1 }, EntryKind::Symlink { target: t2 }) => {
            if t1 != t2 {
                return Some(format!(
                    "symlink target differs ({:?} vs {:?})",
                    String::from_utf8_lossy(t1),
                    String::from_utf8_lossy(t2)
                ));
            }
        }
        (k1, k2) if std::mem::discriminant(k1) != std::mem::discriminant(k2) => {
            return Some(format!("{} vs {}", k1.name(), k2.name()));
        }
        (k1, k2) => {
            if k1 != k2 {
                return Some(format!("device numbers differ ({k1:?} vs {k2:?})"));
            }
        }
    }
    if x.mode != y.mode {
        return Some(format!("mode differs ({:04o} vs {:04o})", x.mode, y.mode));
    }
    if (x.uid, x.gid) != (y.uid, y.gid) {
        return Some(format!(
            "owner differs ({}:{} vs {}:{})",
            x.uid, x.gid, y.uid, y.gid
        ));
    }
    if x.xattrs != y.xattrs {
        let names = |v: &[(Vec<u8>, Vec<u8>)]| {
            v.iter()
                .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        return Some(format!(
            "extended attributes differ ([{}] vs [{}])",
            names(&x.xattrs),
            names(&y.xattrs)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::format::{self, OverrideStat, RecordedType};
    use std::os::unix::fs::PermissionsExt;

    fn dirfd(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn record(p: &Path, uid: u32, gid: u32, mode: u32, kind: RecordedType) {
        let f = rustix::fs::open(p, OFlags::RDONLY, Mode::empty()).unwrap();
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid,
                gid,
                mode,
                kind: Some(kind),
            },
        )
        .unwrap();
    }

    fn write(p: &Path, content: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn by<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
        entries
            .iter()
            .find(|e| e.path == path.as_bytes())
            .unwrap_or_else(|| panic!("no {path}"))
    }

    fn digest(top_first: &[&Path]) -> RootfsDigest {
        let v: Vec<PathBuf> = top_first.iter().map(|p| p.to_path_buf()).collect();
        layers_digest(&v).unwrap()
    }

    /// A two-layer image exercising every rule of the overlay.
    fn two_layers(d: &Path) -> (PathBuf, PathBuf) {
        let (low, up) = (d.join("low"), d.join("up"));
        write(&low.join("a/keep"), "keep");
        write(&low.join("a/gone"), "x");
        write(&low.join("a/gone2"), "x");
        write(&low.join("b/x"), "hidden by an xattr-opaque dir");
        write(&low.join("e/z"), "hidden by a marker-opaque dir");
        write(&low.join("c"), "a file, then a dir");
        write(&low.join("d/y"), "a dir, then a file");
        std::os::unix::fs::symlink("old-target", low.join("f")).unwrap();
        write(&low.join("g/deep/er"), "a whole dir whited out");

        std::fs::create_dir_all(up.join("a")).unwrap();
        format::make_whiteout_file(dirfd(&up.join("a")), b"gone").unwrap();
        format::make_whiteout(dirfd(&up.join("a")), b"gone2").unwrap();
        write(&up.join("a/new"), "new");
        write(&up.join("b/w"), "w");
        assert_eq!(
            format::set_opaque(dirfd(&up.join("b"))).unwrap(),
            format::OpaqueKind::Xattr
        );
        write(&up.join("e/.wh..wh..opq"), "");
        write(&up.join("e/v"), "v");
        write(&up.join("c/inner"), "inner");
        write(&up.join("d"), "now a file");
        std::os::unix::fs::symlink("new-target", up.join("f")).unwrap();
        format::make_whiteout(dirfd(&up), b"g").unwrap();
        write(&up.join("dev/null"), "");
        record(
            &up.join("dev/null"),
            0,
            0,
            0o666,
            RecordedType::Char { major: 1, minor: 3 },
        );
        write(&up.join("su"), "setuid");
        record(&up.join("su"), 0, 42, 0o4755, RecordedType::File);
        (low, up)
    }

    #[test]
    fn rootfs_digest_merges_layers_as_the_overlay_does() {
        let d = tempfile::tempdir().unwrap();
        let (low, up) = two_layers(d.path());
        let got = digest(&[&up, &low]);
        let paths: Vec<String> = got
            .entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "", "a", "a/keep", "a/new", "b", "b/w", "c", "c/inner", "d", "dev", "dev/null",
                "e", "e/v", "f", "su"
            ]
        );
        assert!(matches!(by(&got.entries, "c").kind, EntryKind::Dir));
        match &by(&got.entries, "d").kind {
            EntryKind::File { size, sha256 } => {
                assert_eq!((*size, sha256), (10, &Digest::of(b"now a file")))
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            by(&got.entries, "f").kind,
            EntryKind::Symlink {
                target: b"new-target".to_vec()
            }
        );
        assert_eq!(by(&got.entries, "f").mode, 0o777);
        let null = by(&got.entries, "dev/null");
        assert_eq!(null.kind, EntryKind::Char { major: 1, minor: 3 });
        assert_eq!((null.uid, null.gid, null.mode), (0, 0, 0o666));
        let su = by(&got.entries, "su");
        assert_eq!((su.uid, su.gid, su.mode), (0, 42, 0o4755));
        // The format's own names and xattrs are not content.
        assert!(by(&got.entries, "b").xattrs.is_empty());
        // Control: the lower layer alone has what the upper one hides.
        let low_only = digest(&[&low]);
        let lp: Vec<&[u8]> = low_only.entries.iter().map(|e| e.path.as_slice()).collect();
        for p in ["a/gone", "a/gone2", "b/x", "e/z", "d/y", "g/deep/er"] {
            assert!(lp.contains(&p.as_bytes()), "{p}");
        }
        assert_ne!(low_only.digest, got.digest);
        // The layers were only read.
        assert!(low.join("a/gone").exists() && up.join("a/.wh.gone").exists());
    }

    /// A one-layer tree; `order` reverses the order its files are made in.
    fn simple(dir: &Path, reverse: bool) {
        let mut names: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        if reverse {
            names.reverse();
        }
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        for n in &names {
            write(&dir.join("etc").join(n), n);
        }
        write(&dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
        write(&dir.join("bin/tool"), "#!/bin/sh\n");
        std::fs::set_permissions(dir.join("bin/tool"), PermissionsExt::from_mode(0o755)).unwrap();
        record(dir, 0, 0, 0o755, RecordedType::Dir);
    }

    #[test]
    fn rootfs_digest_changes_with_content_mode_owner_xattrs_only() {
        let d = tempfile::tempdir().unwrap();
        let (one, two) = (d.path().join("one"), d.path().join("two"));
        simple(&one, false);
        simple(&two, true);
        let base = digest(&[&one]);
        assert_eq!(base.digest, digest(&[&two]).digest, "creation order");
        assert_eq!(base.digest.as_str().len(), "sha256:".len() + 64);

        // mtimes are left out.
        let old = std::fs::File::options()
            .write(true)
            .open(one.join("etc/passwd"))
            .unwrap();
        old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(12345))
            .unwrap();
        assert_eq!(digest(&[&one]).digest, base.digest, "mtime");

        let check = |what: &str, path: &str, how: &str| {
            let now = digest(&[&two]);
            assert_ne!(now.digest, base.digest, "{what}");
            let diff = first_difference(&base.entries, &now.entries)
                .expect(what)
                .to_string();
            assert!(
                diff.starts_with(&format!("/{path}: {how}")),
                "{what}: {diff}"
            );
        };
        write(&two.join("etc/passwd"), "root:x:0:0::/root:/bin/bash\n");
        check("content", "etc/passwd", "content differs");
        simple(&two, true);
        assert_eq!(digest(&[&two]).digest, base.digest, "back to the same");

        std::fs::set_permissions(two.join("bin/tool"), PermissionsExt::from_mode(0o700)).unwrap();
        check("mode", "bin/tool", "mode differs (0755 vs 0700)");
        std::fs::set_permissions(two.join("bin/tool"), PermissionsExt::from_mode(0o755)).unwrap();

        record(&two.join("bin/tool"), 0, 0, 0o4755, RecordedType::File);
        check("setuid", "bin/tool", "mode differs");
        record(&two.join("bin/tool"), 7, 0, 0o755, RecordedType::File);
        check("owner", "bin/tool", "owner differs (0:0 vs 7:0)");
        format::remove_override_stat(dirfd_file(&two.join("bin/tool"))).unwrap();
        assert_eq!(digest(&[&two]).digest, base.digest);

        record(&two, 0, 0, 0o700, RecordedType::Dir);
        check("root's mode", "", "mode differs");
        record(&two, 0, 0, 0o755, RecordedType::Dir);

        let f = dirfd_file(&two.join("etc/f07"));
        rustix::fs::fsetxattr(
            &f,
            "user.hutch.xattr.security.capability",
            b"c",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        check(
            "xattr",
            "etc/f07",
            "extended attributes differ ([] vs [security.capability])",
        );
        rustix::fs::fremovexattr(&f, "user.hutch.xattr.security.capability").unwrap();

        std::fs::remove_file(two.join("etc/f39")).unwrap();
        check("missing", "etc/f39", "only in the first tree");
        write(&two.join("etc/f39"), "f39");
        write(&two.join("etc/extra"), "");
        check("added", "etc/extra", "only in the second tree");
        std::fs::remove_file(two.join("etc/extra")).unwrap();
        assert_eq!(digest(&[&two]).digest, base.digest);
        assert_eq!(
            first_difference(&base.entries, &digest(&[&two]).entries),
            None
        );
    }

    fn dirfd_file(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY, Mode::empty()).unwrap()
    }

    #[test]
    fn rootfs_digest_stream_is_a_gnu_tar() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("l");
        let long_dir = "d".repeat(60);
        let long_file = format!("{long_dir}/{}", "f".repeat(60));
        write(&l.join(&long_file), "long");
        let long_target = "t".repeat(150);
        std::os::unix::fs::symlink(&long_target, l.join("link")).unwrap();
        write(&l.join("cap"), "binary");
        record(&l.join("cap"), 1000, 2000, 0o2750, RecordedType::File);
        let f = dirfd_file(&l.join("cap"));
        for (n, v) in [
            // (No newline in the value: the tar crate splits records at newlines.)
            ("user.hutch.xattr.security.capability", &b"\x01\x00 ="[..]),
            ("user.a", b"1"),
        ] {
            rustix::fs::fsetxattr(&f, n, v, rustix::fs::XattrFlags::empty()).unwrap();
        }
        write(&l.join("dev/sda"), "");
        record(
            &l.join("dev/sda"),
            0,
            6,
            0o660,
            RecordedType::Block { major: 8, minor: 0 },
        );
        record(&l, 0, 0, 0o755, RecordedType::Dir);

        let tree = merge(&[l.as_path()]).unwrap();
        let mut stream = Vec::new();
        let entries = write_tar(&[l.as_path()], tree, &mut stream).unwrap();
        assert_eq!(stream.len() % 512, 0);
        assert_eq!(Digest::of(&stream), digest(&[&l]).digest);

        let mut ar = tar::Archive::new(&stream[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let h = e.header().clone();
            assert_eq!(h.mtime().unwrap(), 0, "{name}");
            assert!(h.as_gnu().is_some(), "{name}: a GNU header");
            let xattrs: Vec<(String, Vec<u8>)> = match e.pax_extensions().unwrap() {
                Some(x) => x
                    .map(|x| {
                        let x = x.unwrap();
                        (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                    })
                    .collect(),
                None => Vec::new(),
            };
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            seen.push(name.clone());
            match name.as_str() {
                "./" => assert_eq!(h.mode().unwrap(), 0o755),
                "./cap" => {
                    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1000, 2000));
                    assert_eq!(h.mode().unwrap(), 0o2750);
                    assert_eq!(content, b"binary");
                    assert_eq!(
                        xattrs,
                        [
                            (
                                "SCHILY.xattr.security.capability".to_string(),
                                b"\x01\x00 =".to_vec()
                            ),
                            ("SCHILY.xattr.user.a".to_string(), b"1".to_vec())
                        ]
                    );
                }
                "./dev/sda" => {
                    assert_eq!(h.entry_type(), tar::EntryType::Block);
                    assert_eq!(
                        (h.device_major().unwrap(), h.device_minor().unwrap()),
                        (Some(8), Some(0))
                    );
                    assert_eq!((h.gid().unwrap(), h.mode().unwrap()), (6, 0o660));
                }
                "./link" => assert_eq!(link.unwrap(), long_target.as_bytes()),
                n if n == format!("./{long_file}") => assert_eq!(content, b"long"),
                _ => {}
            }
        }
        let want: Vec<String> = entries
            .iter()
            .map(|e| {
                let slash = if e.kind == EntryKind::Dir && !e.path.is_empty() {
                    "/"
                } else {
                    ""
                };
                format!("./{}{slash}", String::from_utf8_lossy(&e.path))
            })
            .collect();
        assert_eq!(seen, want);
        assert!(seen.contains(&format!("./{long_file}")), "{seen:?}");
    }

    #[test]
    fn rootfs_digest_numeric_fields() {
        let mut f = [0u8; 8];
        numeric(&mut f, 0o7777777);
        assert_eq!(&f, b"7777777\0");
        numeric(&mut f, 1 << 21);
        assert_eq!(f, [0x80, 0, 0, 0, 0, 0x20, 0, 0]);
        let mut s = [0u8; 12];
        numeric(&mut s, 1 << 33);
        assert_eq!(s, [0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        // The PAX length counts its own digits: 97 + 2 bytes, but 98 + 3.
        assert_eq!(
            pax_records(&[(b"a".to_vec(), vec![b'v'; 80])])[..3],
            *b"99 "
        );
        assert_eq!(
            pax_records(&[(b"a".to_vec(), vec![b'v'; 81])])[..4],
            *b"101 "
        );
        assert_eq!(
            &pax_records(&[(b"a".to_vec(), b"v".to_vec())])[..],
            b"20 SCHILY.xattr.a=v\n"
        );
    }
}
