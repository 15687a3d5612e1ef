//! THE on-disk format of hutch layers and upper dirs.
//!
//! Every unpacked layer (`layers/sha256/<hex>/root/`) and every container
//! upper dir uses this format. It is written by the layer unpacker
//! (`store::unpack`) and by the FUSE overlay on copy-up, and read by the FUSE
//! overlay. It is deliberately the format of the kernel overlayfs mounted with
//! `userxattr` and of fuse-overlayfs / containers-storage (Podman, Buildah)
//! in rootless mode, so that those tools can read our directories and we can
//! read theirs.
//!
//! # Whiteouts (a name deleted relative to the layers below)
//!
//! * Preferred: a **character device 0:0** named `NAME` (what overlayfs
//!   creates). Unprivileged users may create exactly this device since Linux
//!   5.8. No other character or block device ever appears in a hutch
//!   directory (device nodes from images are stored as regular files, see
//!   below), so *any* char device 0:0 is a whiteout.
//! * Fallback, when `mknod` of the whiteout fails with `EPERM` (older kernels,
//!   some filesystems) or `EOPNOTSUPP`: an empty regular file named
//!   `.wh.NAME` (the OCI layer convention; fuse-overlayfs understands it, the
//!   kernel overlayfs does not).
//!
//! # Opaque directories (hide everything below from lower layers)
//!
//! * Preferred: the xattr `user.overlay.opaque` = `y` on the directory (the
//!   kernel overlayfs with `userxattr`; fuse-overlayfs reads it too).
//! * Fallback, when the filesystem has no user xattrs: an empty regular file
//!   `.wh..wh..opq` inside the directory.
//!
//! Readers accept both forms, and additionally `trusted.overlay.opaque` and
//! `user.fuseoverlayfs.opaque` = `y` (written by other tools). Names beginning
//! with `.wh.` are never shown to a container.
//!
//! # Renamed directories (`user.overlay.redirect`)
//!
//! A directory of a lower layer renamed in the container is not copied:
//! the upper dir holds a directory at the new name with the xattr
//! `user.overlay.redirect` = the path where the lower layers hold its
//! content, and a whiteout at the old name. The value is the kernel
//! overlayfs's (`redirect_dir=on`, with `userxattr`): an absolute path
//! from the layer root (`/usr/lib/x`), or one name without `/` for a
//! directory renamed within its parent. Below the redirected directory the
//! lower layers are read at the redirect path (and its children at
//! `redirect/NAME`); a redirect found in a lower layer applies to the
//! layers below that one. We always write absolute paths and read both.
//! A value with an empty, `.` or `..` component, a NUL, or more than
//! `PATH_MAX` bytes is ignored (as if absent). The kernel overlay mounted
//! without `redirect_dir` (unprivileged mounts) and fuse-overlayfs ignore
//! the xattr: they show the directory with its upper entries only. `hutch
//! diff` and `hutch commit` write a renamed directory out whole (opaque,
//! with its lower content), since image layers have no redirects.
//!
//! # Ownership and modes (`user.containers.override_stat`)
//!
//! Everything on disk is owned by the (unprivileged) user who unpacked it,
//! except symlinks, fifos and sockets the overlay chowns (see Limits).
//! On disk, regular files get mode `(mode & 0o777) | 0o600` and directories
//! `(mode & 0o777) | 0o700`, so the store can always read and delete them;
//! setuid, setgid and sticky bits are never set on disk on these (fifos and
//! sockets: see Limits). The true owner, group and mode are recorded in the xattr `user.containers.override_stat`,
//! in the format of containers-storage's `FormatContainersOverrideXattrDevice`
//! (`pkg/idtools/idtools.go`), which fuse-overlayfs reads (its `override_mode`
//! parses the first three fields with `"%d:%d:%o"`; since 1.15 it also reads
//! the type field to present devices):
//!
//! ```text
//! <uid>:<gid>:<mode as %04o>:<type>
//! type = file | dir | symlink | pipe | socket | block-<major>-<minor> | char-<major>-<minor>
//! e.g.  0:0:4755:file     42:43:0640:file     0:0:1777:dir     0:0:0666:char-1-3
//! ```
//!
//! `mode` holds only the permission bits including setuid/setgid/sticky
//! (`0o7777`); the file type is the `type` field. Older writers produce only
//! the first three fields (`0:0:0555`); [`OverrideStat::decode`] accepts both,
//! and extra fields after the fourth (forward compatibility) are ignored.
//!
//! The record is written only where the truth differs from what the directory
//! shows by default (owner 0:0 and the on-disk mode), that is when uid or gid
//! is not 0, when the on-disk mode is not the true mode, and always for
//! device nodes. Exception: the **root directory of every layer** always
//! carries a record, because fuse-overlayfs decides per layer whether to
//! honour `user.containers.override_stat` by probing the layer root for it.
//!
//! Limits (Linux allows `user.*` xattrs only on regular files and
//! directories): symlinks, fifos and sockets carry no record. Their owner
//! is their **owner on disk**, as the overlay's server sees it: it runs as
//! root of a user namespace in which the store's user is 0, so what the
//! store made presents as 0:0. The overlay `lchown`s a symlink, fifo or
//! socket of an upper dir when it is created by another uid/gid than 0:0,
//! copied up from a lower one owned by another, or chown-ed; when the
//! owner cannot be kept there the call fails with the error of `lchown(2)`
//! (`EINVAL` for an id not mapped in the server's namespace, `EPERM`
//! without `CAP_CHOWN` there) instead of being lost (except under
//! `hutch-overlayfs -o squash_to_*`, which ignores such failures as
//! fuse-overlayfs does; see `overlay::idmap`). With a subordinate id
//! range, such an entry is owned on disk by the range's host id (e.g.
//! 100122 for 123); the store's user can still delete it (that needs only
//! write access to the directory, and directories on disk are never
//! sticky). fuse-overlayfs and the kernel overlay read such owners the same
//! way. The layer unpacker runs without a namespace and cannot chown: a
//! non-root owner of a symlink or fifo in an image is lost (logged at debug
//! level) and the entry is 0:0, as before. Modes: fifos in layers keep
//! their permission bits on disk but not setuid/setgid/sticky
//! ([`stored_fifo_mode`]); fifos and sockets the overlay writes in an upper
//! dir keep all of `0o7777` on disk ([`stored_node_mode`]), as on the
//! kernel overlay. A symlink's mode is meaningless.
//!
//! # Device nodes
//!
//! Character and block devices from images are stored as **empty regular
//! files** whose `user.containers.override_stat` record has type
//! `char-M-m` / `block-M-m`; the overlay presents them as devices. Fifos are
//! real fifos. Sockets are not stored.
//!
//! # Other extended attributes
//!
//! * `user.*` xattrs from an image are stored as they are, except the
//!   reserved prefixes below.
//! * Any other namespace (`security.capability`, `trusted.*`, `system.*`) cannot
//!   be set by an unprivileged user; it is stored as
//!   `user.hutch.xattr.<original name>` (e.g.
//!   `user.hutch.xattr.security.capability`) and presented under its original
//!   name by the overlay.
//! * Reserved, never taken from an image (that would let a layer forge
//!   ownership, whiteouts or opaque dirs): `user.containers.*`,
//!   `user.overlay.*`, `user.fuseoverlayfs.*`, `user.hutch.*`. The unpacker
//!   drops them with a warning. The overlay hides them from containers.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use std::fmt::Write as _;
use std::io;
use std::os::fd::AsFd;

/// Prefix of whiteout files (`.wh.NAME`) in OCI layers and of our fallback.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque marker file (OCI layers and our fallback).
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of aufs metadata names (`.wh..wh.plnk` ...), never a whiteout.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque-directory xattr we write (kernel overlayfs with `userxattr`).
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// Opaque xattrs written by other tools; accepted when reading.
pub const OPAQUE_XATTRS_READ: [&str; 3] = [
    "user.overlay.opaque",
    "trusted.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// Where the lower layers hold a renamed directory's content (see
/// "Renamed directories").
pub const REDIRECT_XATTR: &str = "user.overlay.redirect";
/// The ownership record (see the module documentation for its format).
pub const OVERRIDE_STAT_XATTR: &str = "user.containers.override_stat";
/// Prefix under which xattrs of namespaces other than `user.` are stored.
pub const FOREIGN_XATTR_PREFIX: &str = "user.hutch.xattr.";
/// Xattr prefixes that belong to the format and are never taken from images.
pub const RESERVED_XATTR_PREFIXES: [&str; 4] = [
    "user.containers.",
    "user.overlay.",
    "user.fuseoverlayfs.",
    "user.hutch.",
];

/// The on-disk mode of a regular file (and of a device node's placeholder).
pub const fn stored_file_mode(mode: u32) -> u32 {
    (mode & 0o777) | 0o600
}

/// The on-disk mode of a directory.
pub const fn stored_dir_mode(mode: u32) -> u32 {
    (mode & 0o777) | 0o700
}

/// The on-disk mode of a fifo in an unpacked layer: the true permission
/// bits, no special bits (the unpacker's format since the first release;
/// layer digests are computed from it).
pub const fn stored_fifo_mode(mode: u32) -> u32 {
    mode & 0o777
}

/// The on-disk mode of a fifo or socket the overlay writes in an upper dir
/// (created, copied up, chmod-ed): all of `0o7777`. Setuid, setgid and
/// sticky bits mean nothing on these types, so keeping them on disk is
/// harmless, and Linux allows no xattr record there.
pub const fn stored_node_mode(mode: u32) -> u32 {
    mode & 0o7777
}

// ---------------------------------------------------------------------------
// Whiteouts
// ---------------------------------------------------------------------------

/// How a whiteout was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutKind {
    /// A character device 0:0 named `NAME`.
    CharDevice,
    /// An empty regular file named `.wh.NAME`.
    File,
}

fn check_name(name: &[u8]) -> io::Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid whiteout name {:?}", String::from_utf8_lossy(name)),
        ));
    }
    Ok(())
}

/// Create a whiteout for `name` in the directory `dirfd`: a char device 0:0,
/// or if the kernel/filesystem refuses it (`EPERM`, `EOPNOTSUPP`), an empty
/// file `.wh.NAME`. `name` must not exist (`EEXIST` otherwise).
pub fn make_whiteout<Fd: AsFd>(dirfd: Fd, name: &[u8]) -> io::Result<WhiteoutKind> {
    check_name(name)?;
    match rustix::fs::mknodat(
        dirfd.as_fd(),
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    ) {
        Ok(()) => Ok(WhiteoutKind::CharDevice),
        Err(Errno::PERM) | Err(Errno::OPNOTSUPP) => {
            make_whiteout_file(dirfd, name)?;
            Ok(WhiteoutKind::File)
        }
        Err(e) => Err(e.into()),
    }
}

/// Create the fallback whiteout `.wh.NAME` (an empty regular file) in
/// `dirfd`. Succeeds if it already exists as a regular file.
pub fn make_whiteout_file<Fd: AsFd>(dirfd: Fd, name: &[u8]) -> io::Result<()> {
    check_name(name)?;
    let mut wh = Vec::with_capacity(WHITEOUT_PREFIX.len() + name.len());
    wh.extend_from_slice(WHITEOUT_PREFIX);
    wh.extend_from_slice(name);
    create_empty_file(dirfd, &wh)
}

fn create_empty_file<Fd: AsFd>(dirfd: Fd, name: &[u8]) -> io::Result<()> {
    match rustix::fs::openat(
        dirfd.as_fd(),
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(_fd) => Ok(()),
        Err(Errno::EXIST) => {
            let st = rustix::fs::statat(dirfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
                Ok(())
            } else {
                Err(Errno::EXIST.into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `st` describes a whiteout device (char device 0:0).
pub fn is_whiteout_stat(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// For a fallback whiteout file name `.wh.NAME`, the hidden `NAME`. `None`
/// for other names, for the opaque marker and for aufs metadata
/// (`.wh..wh.*`).
pub fn whiteout_target(name: &[u8]) -> Option<&[u8]> {
    if name.starts_with(AUFS_META_PREFIX) {
        return None;
    }
    match name.strip_prefix(WHITEOUT_PREFIX) {
        Some(target) if !target.is_empty() => Some(target),
        _ => None,
    }
}

/// Whether `name` is the opaque marker file `.wh..wh..opq`.
pub fn is_opaque_marker(name: &[u8]) -> bool {
    name == OPAQUE_MARKER
}

/// Whether `name` belongs to the format (starts with `.wh.`): such names are
/// never shown to a container and never created from image content.
pub fn is_reserved_name(name: &[u8]) -> bool {
    name.starts_with(WHITEOUT_PREFIX)
}

// ---------------------------------------------------------------------------
// Opaque directories
// ---------------------------------------------------------------------------

/// How an opaque mark was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaqueKind {
    /// `user.overlay.opaque` = `y` on the directory.
    Xattr,
    /// An empty file `.wh..wh..opq` in the directory.
    MarkerFile,
}

fn xattrs_unsupported(e: Errno) -> bool {
    e == Errno::OPNOTSUPP || e == Errno::NOTSUP
}

/// Mark the directory `dirfd` opaque. `dirfd` must be an ordinary (not
/// `O_PATH`) directory fd.
pub fn set_opaque<Fd: AsFd>(dirfd: Fd) -> io::Result<OpaqueKind> {
    match rustix::fs::fsetxattr(dirfd.as_fd(), OPAQUE_XATTR, b"y", XattrFlags::empty()) {
        Ok(()) => Ok(OpaqueKind::Xattr),
        Err(e) if xattrs_unsupported(e) => {
            create_empty_file(dirfd, OPAQUE_MARKER)?;
            Ok(OpaqueKind::MarkerFile)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the directory `dirfd` is opaque, in any representation we know
/// (the rule the overlay applies in `Layers::dir_opaque` through its layer
/// paths; `hutch diff` and `hutch commit` read upper dirs with this, the
/// unpacker's tests check what they wrote with it).
/// `dirfd` must be an ordinary (not `O_PATH`) directory fd.
pub fn is_opaque<Fd: AsFd>(dirfd: Fd) -> io::Result<bool> {
    let fd = dirfd.as_fd();
    for name in OPAQUE_XATTRS_READ {
        let mut buf = [0u8; 8];
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) if buf.get(..n) == Some(&b"y"[..]) => return Ok(true),
            // Absent, unreadable (trusted.* for an unprivileged user),
            // unsupported, or another value: not opaque by this xattr.
            Ok(_) => {}
            Err(Errno::NODATA | Errno::PERM | Errno::ACCESS | Errno::RANGE) => {}
            Err(e) if xattrs_unsupported(e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match rustix::fs::statat(fd, OPAQUE_MARKER, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------
// Ownership record
// ---------------------------------------------------------------------------

/// The file type field of an ownership record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedType {
    File,
    Dir,
    Symlink,
    Pipe,
    Socket,
    Block { major: u32, minor: u32 },
    Char { major: u32, minor: u32 },
}

/// The true attributes of a file, as recorded in
/// `user.containers.override_stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrideStat {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    /// `None` for three-field records written by older tools: the type is
    /// then the type of the file on disk.
    pub kind: Option<RecordedType>,
}

/// A malformed ownership record.
#[derive(Debug, thiserror::Error)]
#[error("malformed {OVERRIDE_STAT_XATTR} value {value:?}: {reason}")]
pub struct FormatError {
    pub value: String,
    pub reason: &'static str,
}

impl OverrideStat {
    /// Append the record's text to `out` (no allocation if `out` has room).
    pub fn encode_into(&self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}:{}:{:04o}:", self.uid, self.gid, self.mode & 0o7777);
        let _ = match self.kind.unwrap_or(RecordedType::File) {
            RecordedType::File => out.write_str("file"),
            RecordedType::Dir => out.write_str("dir"),
            RecordedType::Symlink => out.write_str("symlink"),
            RecordedType::Pipe => out.write_str("pipe"),
            RecordedType::Socket => out.write_str("socket"),
            RecordedType::Block { major, minor } => write!(out, "block-{major}-{minor}"),
            RecordedType::Char { major, minor } => write!(out, "char-{major}-{minor}"),
        };
    }

    /// The record's text, e.g. `42:43:0644:file`. A record without a type
    /// is encoded as `file`.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(32);
        self.encode_into(&mut s);
        s
    }

    /// Parse a record (three or more `:`-separated fields).
    pub fn decode(value: &[u8]) -> Result<OverrideStat, FormatError> {
        let bad = |reason| FormatError {
            value: String::from_utf8_lossy(value).into_owned(),
            reason,
        };
        let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
        let mut fields = text.split(':');
        let uid = fields
            .next()
            .and_then(parse_dec)
            .ok_or_else(|| bad("bad uid"))?;
        let gid = fields
            .next()
            .and_then(parse_dec)
            .ok_or_else(|| bad("bad gid"))?;
        let mode = fields
            .next()
            .and_then(parse_oct)
            .ok_or_else(|| bad("bad mode"))?;
        let kind = match fields.next() {
            None => None,
            Some(t) => Some(parse_type(t).ok_or_else(|| bad("bad file type"))?),
        };
        Ok(OverrideStat {
            uid,
            gid,
            mode: mode & 0o7777,
            kind,
        })
    }

    /// Device numbers for a device record.
    pub fn device(&self) -> Option<(u32, u32)> {
        match self.kind {
            Some(RecordedType::Block { major, minor })
            | Some(RecordedType::Char { major, minor }) => Some((major, minor)),
            _ => None,
        }
    }
}

fn parse_dec(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_oct(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

fn parse_type(t: &str) -> Option<RecordedType> {
    // Prefix matches, as containers-storage's parser does.
    if t.starts_with("file") {
        Some(RecordedType::File)
    } else if t.starts_with("dir") {
        Some(RecordedType::Dir)
    } else if t.starts_with("symlink") {
        Some(RecordedType::Symlink)
    } else if t.starts_with("pipe") {
        Some(RecordedType::Pipe)
    } else if t.starts_with("socket") {
        Some(RecordedType::Socket)
    } else if t.starts_with("block") || t.starts_with("char") {
        let mut parts = t.split('-');
        let which = parts.next()?;
        let major = parts.next().and_then(parse_dec)?;
        let minor = parts.next().and_then(parse_dec)?;
        match which {
            "block" => Some(RecordedType::Block { major, minor }),
            "char" => Some(RecordedType::Char { major, minor }),
            _ => None,
        }
    } else {
        None
    }
}

/// Read the ownership record of the file open as `fd` (a regular file or
/// directory; not `O_PATH`). `Ok(None)` if there is none or the filesystem
/// has no xattrs.
pub fn read_override_stat<Fd: AsFd>(fd: Fd) -> io::Result<Option<OverrideStat>> {
    let mut buf = [0u8; 128];
    match rustix::fs::fgetxattr(fd.as_fd(), OVERRIDE_STAT_XATTR, &mut buf[..]) {
        Ok(n) => {
            let value = buf.get(..n).unwrap_or(&[]);
            OverrideStat::decode(value)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Err(Errno::NODATA) => Ok(None),
        Err(e) if xattrs_unsupported(e) => Ok(None),
        Err(Errno::RANGE) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{OVERRIDE_STAT_XATTR} value is too long"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Write the ownership record on the file open as `fd` (a regular file or
/// directory; not `O_PATH`).
pub fn write_override_stat<Fd: AsFd>(fd: Fd, stat: &OverrideStat) -> io::Result<()> {
    let mut s = String::with_capacity(32);
    stat.encode_into(&mut s);
    rustix::fs::fsetxattr(
        fd.as_fd(),
        OVERRIDE_STAT_XATTR,
        s.as_bytes(),
        XattrFlags::empty(),
    )
    .map_err(Into::into)
}

/// Remove the ownership record from `fd`, if any.
pub fn remove_override_stat<Fd: AsFd>(fd: Fd) -> io::Result<()> {
    match rustix::fs::fremovexattr(fd.as_fd(), OVERRIDE_STAT_XATTR) {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) if xattrs_unsupported(e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------
// Xattr names
// ---------------------------------------------------------------------------

/// What to do with an xattr coming from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrDisposition {
    /// A `user.*` xattr: store under its own name.
    Direct,
    /// Another namespace: store as `user.hutch.xattr.<name>`.
    Foreign,
    /// A reserved name (or an empty/invalid one): never store.
    Reserved,
}

/// Classify an xattr name found in an image.
pub fn classify_image_xattr(name: &[u8]) -> XattrDisposition {
    if name.is_empty() || name.contains(&0) {
        return XattrDisposition::Reserved;
    }
    if RESERVED_XATTR_PREFIXES
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
    {
        return XattrDisposition::Reserved;
    }
    if name.starts_with(b"user.") {
        XattrDisposition::Direct
    } else {
        XattrDisposition::Foreign
    }
}

/// The name a stored xattr has inside a container: `user.hutch.xattr.X` is
/// `X`, reserved names are hidden (`None`), others are themselves.
pub fn presented_xattr_name(stored: &[u8]) -> Option<&[u8]> {
    if let Some(orig) = stored.strip_prefix(FOREIGN_XATTR_PREFIX.as_bytes()) {
        return if orig.is_empty() { None } else { Some(orig) };
    }
    if RESERVED_XATTR_PREFIXES
        .iter()
        .any(|p| stored.starts_with(p.as_bytes()))
        || stored.starts_with(b"trusted.overlay.")
    {
        return None;
    }
    Some(stored)
}

/// The value of [`REDIRECT_XATTR`] for content at `path` (relative to the
/// layer roots, `a/b`): `/a/b`.
pub fn redirect_value(path: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len() + 1);
    v.push(b'/');
    v.extend_from_slice(path);
    v
}

/// The path (relative to the layer roots, `a/b`) a [`REDIRECT_XATTR`]
/// `value` found on the directory whose parent is at `parent` (`.` for
/// the root) points to; `None` for a value to ignore (see "Renamed
/// directories").
pub fn redirect_target(value: &[u8], parent: &[u8]) -> Option<Vec<u8>> {
    const PATH_MAX: usize = 4096;
    if value.is_empty() || value.len() >= PATH_MAX || value.contains(&0) {
        return None;
    }
    let valid = |c: &[u8]| !c.is_empty() && c != b"." && c != b"..";
    match value.strip_prefix(b"/") {
        Some(abs) => abs.split(|&b| b == b'/').all(valid).then(|| abs.to_vec()),
        None if !value.contains(&b'/') && valid(value) => Some(if parent == b"." {
            value.to_vec()
        } else {
            let mut p = parent.to_vec();
            p.push(b'/');
            p.extend_from_slice(value);
            p
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    #[test]
    fn redirect_values() {
        assert_eq!(redirect_value(b"usr/lib/x"), b"/usr/lib/x");
        assert_eq!(
            redirect_target(b"/usr/lib/x", b"opt"),
            Some(b"usr/lib/x".to_vec())
        );
        assert_eq!(redirect_target(b"old", b"opt"), Some(b"opt/old".to_vec()));
        assert_eq!(redirect_target(b"old", b"."), Some(b"old".to_vec()));
        for bad in [
            &b""[..],
            b"/",
            b"/a//b",
            b"/a/../b",
            b"/..",
            b"..",
            b".",
            b"a/b",
            b"/a/\0",
        ] {
            let bad = bad.to_vec();
            assert_eq!(redirect_target(&bad, b"p"), None, "{bad:?}");
        }
        assert_eq!(redirect_target(b"/a\0b", b"p"), None);
        assert_eq!(redirect_target(&[b'a'; 5000], b"p"), None);
    }

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn override_stat_roundtrip() {
        let cases = [
            (
                OverrideStat {
                    uid: 42,
                    gid: 43,
                    mode: 0o644,
                    kind: Some(RecordedType::File),
                },
                "42:43:0644:file",
            ),
            (
                OverrideStat {
                    uid: 0,
                    gid: 0,
                    mode: 0o4755,
                    kind: Some(RecordedType::File),
                },
                "0:0:4755:file",
            ),
            (
                OverrideStat {
                    uid: 0,
                    gid: 0,
                    mode: 0o1777,
                    kind: Some(RecordedType::Dir),
                },
                "0:0:1777:dir",
            ),
            (
                OverrideStat {
                    uid: 0,
                    gid: 5,
                    mode: 0o620,
                    kind: Some(RecordedType::Char {
                        major: 136,
                        minor: 0,
                    }),
                },
                "0:5:0620:char-136-0",
            ),
            (
                OverrideStat {
                    uid: 0,
                    gid: 6,
                    mode: 0o660,
                    kind: Some(RecordedType::Block { major: 8, minor: 1 }),
                },
                "0:6:0660:block-8-1",
            ),
            (
                OverrideStat {
                    uid: 1,
                    gid: 1,
                    mode: 0o600,
                    kind: Some(RecordedType::Pipe),
                },
                "1:1:0600:pipe",
            ),
        ];
        for (st, text) in cases {
            assert_eq!(st.encode(), text);
            assert_eq!(OverrideStat::decode(text.as_bytes()).unwrap(), st);
        }
    }

    #[test]
    fn override_stat_decode_compat() {
        // Three-field records (older fuse-overlayfs / containers-storage).
        let st = OverrideStat::decode(b"0:0:0555").unwrap();
        assert_eq!((st.uid, st.gid, st.mode, st.kind), (0, 0, 0o555, None));
        let st = OverrideStat::decode(b"1000:100:755").unwrap();
        assert_eq!((st.uid, st.gid, st.mode), (1000, 100, 0o755));
        // Extra trailing fields are ignored.
        let st = OverrideStat::decode(b"0:0:0644:char-1-3:future").unwrap();
        assert_eq!(st.device(), Some((1, 3)));
        assert_eq!(st.kind, Some(RecordedType::Char { major: 1, minor: 3 }));
        for bad in [
            &b""[..],
            b"0:0",
            b"x:0:0644",
            b"0:-1:0644",
            b"0:0:0999",
            b"0:0:0644:weird",
            b"0:0:0644:char-1",
            b"99999999999:0:0644",
            b"\xff:0:0",
        ] {
            assert!(OverrideStat::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn override_stat_read_write() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path());
        assert_eq!(read_override_stat(&fd).unwrap(), None);
        let st = OverrideStat {
            uid: 7,
            gid: 8,
            mode: 0o2750,
            kind: Some(RecordedType::Dir),
        };
        write_override_stat(&fd, &st).unwrap();
        assert_eq!(read_override_stat(&fd).unwrap(), Some(st));
        remove_override_stat(&fd).unwrap();
        assert_eq!(read_override_stat(&fd).unwrap(), None);
    }

    #[test]
    fn whiteout_and_opaque() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path());
        let kind = make_whiteout(&fd, b"gone").unwrap();
        let st = rustix::fs::statat(&fd, "gone", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        match kind {
            WhiteoutKind::CharDevice => {
                assert!(is_whiteout_stat(&st));
            }
            WhiteoutKind::File => unreachable!("mknod 0:0 works on Linux >= 5.8"),
        }
        assert!(make_whiteout(&fd, b"..").is_err());
        assert!(make_whiteout(&fd, b"a/b").is_err());

        make_whiteout_file(&fd, b"other").unwrap();
        make_whiteout_file(&fd, b"other").unwrap(); // idempotent
        let st = rustix::fs::statat(&fd, ".wh.other", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::RegularFile);
        assert_eq!(whiteout_target(b".wh.other"), Some(&b"other"[..]));
        assert_eq!(whiteout_target(b".wh..wh..opq"), None);
        assert_eq!(whiteout_target(b".wh..wh.plnk"), None);
        assert_eq!(whiteout_target(b".wh."), None);
        assert_eq!(whiteout_target(b"plain"), None);
        assert!(is_opaque_marker(b".wh..wh..opq"));
        assert!(is_reserved_name(b".wh.x"));

        assert!(!is_opaque(&fd).unwrap());
        assert_eq!(set_opaque(&fd).unwrap(), OpaqueKind::Xattr);
        assert!(is_opaque(&fd).unwrap());

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join(".wh..wh..opq"), b"").unwrap();
        assert!(is_opaque(open_dir(&sub)).unwrap());
    }

    #[test]
    fn xattr_names() {
        assert_eq!(classify_image_xattr(b"user.foo"), XattrDisposition::Direct);
        assert_eq!(
            classify_image_xattr(b"security.capability"),
            XattrDisposition::Foreign
        );
        assert_eq!(
            classify_image_xattr(b"trusted.overlay.opaque"),
            XattrDisposition::Foreign
        );
        for r in [
            &b"user.containers.override_stat"[..],
            b"user.overlay.opaque",
            b"user.fuseoverlayfs.override_stat",
            b"user.hutch.xattr.security.capability",
            b"",
            b"user.a\0b",
        ] {
            assert_eq!(classify_image_xattr(r), XattrDisposition::Reserved);
        }
        assert_eq!(
            presented_xattr_name(b"user.hutch.xattr.security.capability"),
            Some(&b"security.capability"[..])
        );
        assert_eq!(presented_xattr_name(b"user.overlay.opaque"), None);
        assert_eq!(presented_xattr_name(b"user.containers.override_stat"), None);
        assert_eq!(presented_xattr_name(b"user.foo"), Some(&b"user.foo"[..]));
    }

    #[test]
    fn stored_modes() {
        assert_eq!(stored_file_mode(0o4755), 0o755);
        assert_eq!(stored_file_mode(0o000), 0o600);
        assert_eq!(stored_dir_mode(0o1777), 0o777);
        assert_eq!(stored_dir_mode(0o555), 0o755);
        assert_eq!(stored_fifo_mode(0o4644), 0o644);
        assert_eq!(stored_node_mode(0o1621), 0o1621);
        assert_eq!(stored_node_mode(0o106755), 0o6755);
    }
}
