//! Writing one tar entry into the layer: files (with holes), directories,
//! links, devices, whiteouts, and the metadata the user cannot set for real
//! (recorded in override_stat xattrs).

use super::*;

impl Work {
    pub(super) fn position(&self) -> String {
        if self.have_entry {
            format!("after entry {:?}", lossy(&self.raw))
        } else {
            "at its start".into()
        }
    }

    pub(super) fn path_str(&self) -> String {
        lossy(&self.raw)
    }

    pub(super) fn escape(&self) -> UnpackError {
        UnpackError::Escape {
            path: self.path_str(),
        }
    }

    pub(super) fn invalid(&self, reason: String) -> UnpackError {
        UnpackError::Invalid {
            path: self.path_str(),
            reason,
        }
    }

    pub(super) fn io(&self, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
        UnpackError::Io {
            path: self.path_str(),
            op,
            cause: e.into(),
        }
    }

    pub(super) fn path_problem(&self, p: PathProblem) -> UnpackError {
        match p {
            PathProblem::DotDot => self.escape(),
            PathProblem::Nul => self.invalid("the path contains a NUL byte".into()),
        }
    }

    pub(super) fn parent_error(&self, e: Errno) -> UnpackError {
        match e {
            Errno::LOOP => UnpackError::ThroughSymlink {
                path: self.path_str(),
            },
            Errno::NOTDIR => UnpackError::NotADirectory {
                path: self.path_str(),
            },
            Errno::XDEV => self.escape(),
            e => self.io("opening its parent directory", e),
        }
    }

    pub(super) fn bad_link(&self, reason: &'static str) -> UnpackError {
        UnpackError::BadHardlink {
            path: self.path_str(),
            target: lossy(&self.link),
            reason,
        }
    }

    pub(super) fn xattrs_unsupported(&mut self) {
        if self.xattrs_ok {
            self.xattrs_ok = false;
            tracing::warn!(
                "the filesystem of the layer store does not support user xattrs: \
                 owners, modes, device nodes and xattrs from the image cannot be recorded"
            );
        }
    }

    /// The kind of an entry, or `None` to skip it.
    pub(super) fn classify(&self, t: tar::EntryType) -> Option<Kind> {
        use tar::EntryType as E;
        let kind = match t {
            // Old tars mark directories with a trailing slash only.
            E::Regular if self.raw.last() == Some(&b'/') => Kind::Dir,
            E::Regular | E::Continuous | E::GNUSparse => Kind::File,
            E::Directory => Kind::Dir,
            E::Symlink => Kind::Symlink,
            E::Link => Kind::Hardlink,
            E::Char => Kind::Char,
            E::Block => Kind::Block,
            E::Fifo => Kind::Fifo,
            // GNU dumpdir: a directory whose data lists its contents.
            t if t.as_byte() == b'D' => Kind::Dir,
            E::XGlobalHeader => {
                tracing::debug!("skipping a PAX global header");
                return None;
            }
            t => {
                tracing::warn!(
                    entry = %lossy(&self.raw),
                    r#type = %char::from(t.as_byte()).escape_default(),
                    "skipping a layer entry of unsupported type"
                );
                return None;
            }
        };
        Some(kind)
    }

    pub(super) fn read_meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: Kind,
    ) -> Result<Meta, UnpackError> {
        let h = entry.header();
        let raw = h.as_old();
        let bytes = h.as_bytes();
        let mode = numeric(h.mode(), &raw.mode)
            .map_err(|e| self.invalid(format!("bad mode field: {e}")))?
            & 0o7777;
        let uid =
            numeric(h.uid(), &raw.uid).map_err(|e| self.invalid(format!("bad uid field: {e}")))?;
        let uid =
            u32::try_from(uid).map_err(|_| self.invalid(format!("uid {uid} out of range")))?;
        let gid =
            numeric(h.gid(), &raw.gid).map_err(|e| self.invalid(format!("bad gid field: {e}")))?;
        let gid =
            u32::try_from(gid).map_err(|_| self.invalid(format!("gid {gid} out of range")))?;
        let secs = numeric(h.mtime(), &raw.mtime)
            .map_err(|e| self.invalid(format!("bad mtime field: {e}")))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let (mut major, mut minor) = (0, 0);
        if matches!(kind, Kind::Char | Kind::Block) {
            major = numeric(h.device_major(), bytes.get(329..337).unwrap_or(&[]))
                .map_err(|e| self.invalid(format!("bad device major field: {e}")))?
                .unwrap_or(0);
            minor = numeric(h.device_minor(), bytes.get(337..345).unwrap_or(&[]))
                .map_err(|e| self.invalid(format!("bad device minor field: {e}")))?
                .unwrap_or(0);
        }

        self.xattrs.clear();
        self.xattr_data.clear();
        let exts = entry
            .pax_extensions()
            .map_err(|e| self.invalid(format!("unreadable PAX extended header: {e}")))?;
        if let Some(exts) = exts {
            for ext in exts {
                let ext =
                    ext.map_err(|e| self.invalid(format!("malformed PAX extended header: {e}")))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    match parse_pax_time(ext.value_bytes()) {
                        Some(t) => mtime = t,
                        None => tracing::debug!(
                            entry = %lossy(&self.raw),
                            "ignoring a malformed PAX mtime"
                        ),
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.push_xattr(name, ext.value_bytes());
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            major,
            minor,
        })
    }

    pub(super) fn push_xattr(&mut self, name: &[u8], value: &[u8]) {
        let prefix: &[u8] = match format::classify_image_xattr(name) {
            XattrDisposition::Reserved => {
                tracing::warn!(
                    entry = %lossy(&self.raw),
                    xattr = %lossy(name),
                    "dropping an xattr reserved by hutch's layer format from the layer"
                );
                return;
            }
            XattrDisposition::Direct => b"",
            XattrDisposition::Foreign => format::FOREIGN_XATTR_PREFIX.as_bytes(),
        };
        let start = self.xattr_data.len();
        self.xattr_data.extend_from_slice(prefix);
        self.xattr_data.extend_from_slice(name);
        let mid = self.xattr_data.len();
        self.xattr_data.extend_from_slice(value);
        self.xattrs.push((start, mid, self.xattr_data.len()));
    }

    /// Set the entry's xattrs on `fd` (a regular file or directory).
    pub(super) fn apply_xattrs(&mut self, fd: BorrowedFd<'_>) -> Result<(), UnpackError> {
        for i in 0..self.xattrs.len() {
            if !self.xattrs_ok {
                return Ok(());
            }
            let (start, mid, end) = self.xattrs[i];
            let name = self.xattr_data.get(start..mid).unwrap_or(&[]);
            let value = self.xattr_data.get(mid..end).unwrap_or(&[]);
            match rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if xattrs_unsupported(e) => self.xattrs_unsupported(),
                Err(
                    e @ (Errno::TOOBIG | Errno::RANGE | Errno::NOSPC | Errno::INVAL | Errno::PERM),
                ) => {
                    tracing::warn!(
                        entry = %lossy(&self.raw),
                        xattr = %lossy(name),
                        error = %e,
                        "cannot store an xattr from the layer; dropped"
                    );
                }
                Err(e) => return Err(self.io("setting an xattr", e)),
            }
        }
        Ok(())
    }

    /// Write an ownership record on `fd` (a regular file or directory).
    pub(super) fn record(
        &mut self,
        fd: BorrowedFd<'_>,
        st: &OverrideStat,
    ) -> Result<(), UnpackError> {
        if !self.xattrs_ok {
            return Ok(());
        }
        self.text.clear();
        st.encode_into(&mut self.text);
        match rustix::fs::fsetxattr(
            fd,
            format::OVERRIDE_STAT_XATTR,
            self.text.as_bytes(),
            XattrFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(e) if xattrs_unsupported(e) => {
                self.xattrs_unsupported();
                Ok(())
            }
            Err(e) => Err(self.io("recording the owner and mode", e)),
        }
    }

    pub(super) fn push_dir(&mut self, path: &[u8], mtime: Timespec) {
        let start = self.dir_paths.len();
        self.dir_paths.extend_from_slice(path);
        self.dirs.push((start, self.dir_paths.len(), mtime));
    }

    pub(super) fn opaque(&mut self, dirfd: BorrowedFd<'_>) -> Result<(), UnpackError> {
        format::set_opaque(dirfd)
            .map(|_| ())
            .map_err(|e| self.io("marking the directory opaque", e))
    }

    /// `./` (or `/`): the attributes of the layer root.
    pub(super) fn root_entry(
        &mut self,
        root: BorrowedFd<'_>,
        kind: Kind,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if kind != Kind::Dir {
            return Err(self.invalid("names the layer root but is not a directory".into()));
        }
        let dmode = format::stored_dir_mode(meta.mode);
        rustix::fs::fchmod(root, Mode::from_raw_mode(dmode))
            .map_err(|e| self.io("setting the mode of the layer root", e))?;
        self.apply_xattrs(root)?;
        self.record(
            root,
            &OverrideStat {
                uid: meta.uid,
                gid: meta.gid,
                mode: meta.mode,
                kind: Some(RecordedType::Dir),
            },
        )?;
        self.push_dir(b"", meta.mtime);
        Ok(())
    }

    /// With `.wh.NAME` whiteouts, creating `NAME` in this layer supersedes a
    /// whiteout for it made earlier by this layer. Returns whether there was
    /// one.
    pub(super) fn clear_file_whiteout(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, UnpackError> {
        if !self.whiteout_files {
            return Ok(false);
        }
        self.tmp.clear();
        self.tmp.extend_from_slice(format::WHITEOUT_PREFIX);
        self.tmp.extend_from_slice(name);
        match rustix::fs::unlinkat(pfd, &self.tmp[..], AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io("removing an earlier whiteout", e)),
        }
    }

    /// Remove whatever is at `name` (a tree, safely, if a directory).
    /// Returns whether it was a whiteout.
    pub(super) fn remove_existing(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, UnpackError> {
        let st = match rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.io("inspecting the existing entry", e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            self.cache_dirty = true;
            remove_tree(pfd, name).map_err(|e| self.io("removing the existing directory", e))?;
            Ok(false)
        } else {
            rustix::fs::unlinkat(pfd, name, AtFlags::empty())
                .map_err(|e| self.io("removing the existing entry", e))?;
            Ok(format::is_whiteout_stat(&st))
        }
    }

    /// Run `create`; if the name exists, remove what is there and run it
    /// again (the later entry wins). Returns the result and whether a
    /// whiteout was replaced.
    pub(super) fn create<T>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        op: &'static str,
        mut create: impl FnMut() -> Result<T, Errno>,
    ) -> Result<(T, bool), UnpackError> {
        match create() {
            Ok(v) => return Ok((v, false)),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io(op, e)),
        }
        let was_whiteout = self.remove_existing(pfd, name)?;
        create()
            .map(|v| (v, was_whiteout))
            .map_err(|e| self.io(op, e))
    }

    /// Regular files, and device nodes (stored as empty regular files).
    pub(super) fn file<R: Read>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        kind: Kind,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let dmode = format::stored_file_mode(meta.mode);
        self.clear_file_whiteout(pfd, name)?;
        let (fd, _) = self.create(pfd, name, "creating the file", || {
            rustix::fs::openat(
                pfd,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(dmode),
            )
        })?;
        if dmode & self.umask != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dmode))
                .map_err(|e| self.io("setting the file mode", e))?;
        }
        let mut file = std::fs::File::from(fd);
        let record = match kind {
            Kind::Char => Some(RecordedType::Char {
                major: meta.major,
                minor: meta.minor,
            }),
            Kind::Block => Some(RecordedType::Block {
                major: meta.major,
                minor: meta.minor,
            }),
            _ => {
                let expected = entry.size();
                let written = self.copy_data(entry, &mut file)?;
                if written != expected {
                    return Err(UnpackError::Truncated {
                        path: self.path_str(),
                        expected,
                        got: written,
                    });
                }
                self.stats.file_bytes += written;
                (meta.uid != 0 || meta.gid != 0 || meta.mode != dmode).then_some(RecordedType::File)
            }
        };
        let fd = file.as_fd();
        self.apply_xattrs(fd)?;
        if let Some(kind) = record {
            self.record(
                fd,
                &OverrideStat {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    kind: Some(kind),
                },
            )?;
        }
        rustix::fs::futimens(fd, &meta.times())
            .map_err(|e| self.io("setting the modification time", e))
    }

    /// Copy the entry's data into `file`, leaving holes for long runs of
    /// zeros. Returns the number of bytes of file content.
    pub(super) fn copy_data<R: Read>(
        &mut self,
        src: &mut R,
        file: &mut std::fs::File,
    ) -> Result<u64, UnpackError> {
        let mut total: u64 = 0;
        let mut hole_at_end = false;
        loop {
            let n = fill(src, &mut self.buf)
                .map_err(|e| self.io("reading the file data from the layer", e))?;
            let Some(chunk) = self.buf.get(..n) else {
                break;
            };
            if n == 0 {
                break;
            }
            if n >= HOLE_MIN && is_zero(chunk) {
                let skip = i64::try_from(n).unwrap_or(i64::MAX);
                if let Err(e) = file.seek(SeekFrom::Current(skip)) {
                    return Err(self.io("writing the file", e));
                }
                hole_at_end = true;
            } else {
                if let Err(e) = file.write_all(chunk) {
                    return Err(self.io("writing the file", e));
                }
                hole_at_end = false;
            }
            total += n as u64;
        }
        if hole_at_end {
            file.set_len(total)
                .map_err(|e| self.io("writing the file", e))?;
        }
        Ok(total)
    }

    pub(super) fn dir(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        full: &[u8],
        meta: &Meta,
    ) -> Result<OwnedFd, UnpackError> {
        let dmode = format::stored_dir_mode(meta.mode);
        let mut opaque = self.clear_file_whiteout(pfd, name)?;
        let mut existed = false;
        match rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(dmode)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io("inspecting the existing entry", e))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    existed = true;
                } else {
                    rustix::fs::unlinkat(pfd, name, AtFlags::empty())
                        .map_err(|e| self.io("removing the existing entry", e))?;
                    opaque |= format::is_whiteout_stat(&st);
                    rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(dmode))
                        .map_err(|e| self.io("creating the directory", e))?;
                }
            }
            Err(e) => return Err(self.io("creating the directory", e)),
        }
        let fd = rustix::fs::openat(
            pfd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io("opening the directory", e))?;
        if existed || dmode & self.umask != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dmode))
                .map_err(|e| self.io("setting the directory mode", e))?;
        }
        if opaque {
            self.opaque(fd.as_fd())?;
        }
        self.apply_xattrs(fd.as_fd())?;
        if meta.uid != 0 || meta.gid != 0 || meta.mode != dmode {
            self.record(
                fd.as_fd(),
                &OverrideStat {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    kind: Some(RecordedType::Dir),
                },
            )?;
        } else if existed && self.xattrs_ok {
            // An earlier entry for this directory may have left a record.
            format::remove_override_stat(&fd)
                .map_err(|e| self.io("updating the owner and mode record", e))?;
        }
        self.push_dir(full, meta.mtime);
        Ok(fd)
    }

    pub(super) fn symlink(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if self.link.is_empty() {
            return Err(self.invalid("symlink with an empty target".into()));
        }
        if self.link.contains(&0) {
            return Err(self.invalid("symlink target contains a NUL byte".into()));
        }
        self.clear_file_whiteout(pfd, name)?;
        let target = std::mem::take(&mut self.link);
        let created = self.create(pfd, name, "creating the symlink", || {
            rustix::fs::symlinkat(&target[..], pfd, name)
        });
        self.link = target;
        created?;
        if meta.uid != 0 || meta.gid != 0 {
            tracing::debug!(
                entry = %lossy(&self.raw),
                uid = meta.uid,
                gid = meta.gid,
                "owner of a symlink cannot be recorded (no user xattrs on symlinks)"
            );
        }
        rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("setting the modification time", e))
    }

    pub(super) fn fifo(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let fmode = format::stored_fifo_mode(meta.mode);
        self.clear_file_whiteout(pfd, name)?;
        self.create(pfd, name, "creating the fifo", || {
            rustix::fs::mknodat(pfd, name, FileType::Fifo, Mode::from_raw_mode(fmode), 0)
        })?;
        if fmode & self.umask != 0 {
            // `name` is the fifo just created in a directory only we write.
            rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(fmode), AtFlags::empty())
                .map_err(|e| self.io("setting the fifo mode", e))?;
        }
        if meta.uid != 0 || meta.gid != 0 || meta.mode != fmode {
            tracing::debug!(
                entry = %lossy(&self.raw),
                uid = meta.uid,
                gid = meta.gid,
                mode = meta.mode,
                "owner and special mode bits of a fifo cannot be recorded (no user xattrs on fifos)"
            );
        }
        rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("setting the modification time", e))
    }

    pub(super) fn hardlink(
        &mut self,
        root: BorrowedFd<'_>,
        pfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<(), UnpackError> {
        let mut target = std::mem::take(&mut self.link_norm);
        let result = self.hardlink_to(root, pfd, name, &mut target);
        self.link_norm = target;
        result
    }

    pub(super) fn hardlink_to(
        &mut self,
        root: BorrowedFd<'_>,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        target: &mut Vec<u8>,
    ) -> Result<(), UnpackError> {
        match normalize(&self.link, target) {
            Ok(()) => {}
            Err(PathProblem::DotDot) => {
                return Err(self.bad_link("the target leaves the layer root"));
            }
            Err(PathProblem::Nul) => return Err(self.bad_link("the target contains a NUL byte")),
        }
        if target.is_empty() {
            return Err(self.bad_link("the target is the layer root"));
        }
        let (tparent, tname) = split_last(target);
        if format::is_reserved_name(tname)
            || tparent.split(|&b| b == b'/').any(format::is_reserved_name)
        {
            return Err(self.bad_link("the target is a whiteout"));
        }
        let tparent_fd;
        let tpfd = if tparent.is_empty() {
            root
        } else {
            match rustix::fs::openat2(
                root,
                tparent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Ok(fd) => {
                    tparent_fd = fd;
                    tparent_fd.as_fd()
                }
                Err(Errno::LOOP) => {
                    return Err(self.bad_link("the target path goes through a symlink"));
                }
                Err(Errno::NOENT | Errno::NOTDIR) => {
                    return Err(self.bad_link("the target does not exist in this layer"));
                }
                Err(Errno::XDEV) => return Err(self.bad_link("the target leaves the layer root")),
                Err(e) => return Err(self.io("opening the directory of the hard link target", e)),
            }
        };
        let tst = match rustix::fs::statat(tpfd, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                return Err(self.bad_link("the target does not exist in this layer"));
            }
            Err(e) => return Err(self.io("inspecting the hard link target", e)),
        };
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Err(self.bad_link("the target is a directory"));
        }
        if format::is_whiteout_stat(&tst) {
            return Err(self.bad_link("the target is a whiteout"));
        }
        self.clear_file_whiteout(pfd, name)?;
        match rustix::fs::linkat(tpfd, tname, pfd, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io("creating the hard link", e)),
        }
        // Something is already there: a link to the same file is a no-op,
        // anything else is replaced.
        if let Ok(est) = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
            && est.st_dev == tst.st_dev
            && est.st_ino == tst.st_ino
        {
            return Ok(());
        }
        self.remove_existing(pfd, name)?;
        rustix::fs::linkat(tpfd, tname, pfd, name, AtFlags::empty())
            .map_err(|e| self.io("creating the hard link", e))
    }

    pub(super) fn whiteout(
        &mut self,
        pfd: BorrowedFd<'_>,
        target: &[u8],
    ) -> Result<(), UnpackError> {
        match rustix::fs::statat(pfd, target, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                // A directory of this layer: it stays, but hides the lower
                // layers' contents.
                let fd = rustix::fs::openat(
                    pfd,
                    target,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io("opening the whited-out directory", e))?;
                self.opaque(fd.as_fd())
            }
            // A file of this layer (it already hides the lower ones), or
            // already a whiteout.
            Ok(_) => Ok(()),
            Err(Errno::NOENT) => {
                if self.whiteout_files {
                    format::make_whiteout_file(pfd, target)
                        .map_err(|e| self.io("creating the whiteout", e))
                } else {
                    match format::make_whiteout(pfd, target) {
                        Ok(format::WhiteoutKind::CharDevice) => Ok(()),
                        Ok(format::WhiteoutKind::File) => {
                            tracing::debug!(
                                "whiteout devices refused; storing whiteouts as .wh. files"
                            );
                            self.whiteout_files = true;
                            Ok(())
                        }
                        Err(e) => Err(self.io("creating the whiteout", e)),
                    }
                }
            }
            Err(e) => Err(self.io("inspecting the whited-out name", e)),
        }
    }
}
