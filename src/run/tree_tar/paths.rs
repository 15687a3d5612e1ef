//! Where the paths of a copy are looked up, and how a path given by the
//! user is split (Docker's rules: a trailing `/`, a trailing `/.`).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Lookups retried when openat2 answers EAGAIN (a rename raced it).
const RETRIES: u32 = 100;

/// Where paths are resolved.
#[derive(Clone, Copy)]
pub(crate) enum Base<'a> {
    /// The host, as any program resolves the user's own paths (relative
    /// to the working directory, symlinks followed).
    Host,
    /// A container's root directory: absolute symlinks and `..` stay in
    /// it (`RESOLVE_IN_ROOT`), magic links are refused.
    Root(BorrowedFd<'a>),
}

impl Base<'_> {
    /// Open `path`; a symlink as its last component is followed when
    /// `follow` (inside a container's root, to a target inside it).
    pub(crate) fn open(&self, path: &[u8], flags: OFlags, follow: bool) -> Result<OwnedFd, Errno> {
        let mut flags = flags | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let path: &[u8] = if path.is_empty() { b"." } else { path };
        match self {
            Base::Host => rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()),
            Base::Root(root) => {
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                let mut tries = 0;
                loop {
                    match rustix::fs::openat2(*root, path, flags, Mode::empty(), resolve) {
                        Err(Errno::AGAIN) if tries < RETRIES => tries += 1,
                        other => return other,
                    }
                }
            }
        }
    }
}

/// A path as the user gave it, split for a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemPath {
    /// The whole path (for a container's, made absolute and cleaned).
    pub(crate) full: Vec<u8>,
    /// Its parent directory and last component; None when the path
    /// names a directory's contents (`DIR/.`, `.`, `/`).
    pub(crate) split: Option<(Vec<u8>, Vec<u8>)>,
    /// It ended in `/`: it must be a directory.
    pub(crate) slash: bool,
    /// As given, for messages.
    pub(crate) shown: String,
}

impl ItemPath {
    /// A path in a container: relative to its working directory `cwd`,
    /// cleaned lexically as Docker does (`..` stops at the root).
    pub(crate) fn container(path: &[u8], cwd: &str) -> ItemPath {
        let shown = String::from_utf8_lossy(path).into_owned();
        let mut whole = Vec::new();
        if !path.starts_with(b"/") {
            whole.extend_from_slice(cwd.as_bytes());
            whole.push(b'/');
        }
        whole.extend_from_slice(path);
        let slash = path.ends_with(b"/");
        let contents = path == b"." || path.ends_with(b"/.");
        let mut comps: Vec<&[u8]> = Vec::new();
        for c in whole.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    comps.pop();
                }
                c => comps.push(c),
            }
        }
        let full = join_absolute(&comps);
        let split = match comps.split_last() {
            Some((last, parent)) if !contents => Some((join_absolute(parent), last.to_vec())),
            _ => None,
        };
        ItemPath {
            full,
            split,
            slash,
            shown,
        }
    }

    /// A path on the host, as given (no lexical cleaning: `a/..` is
    /// what the kernel makes of it).
    pub(crate) fn host(path: &[u8]) -> ItemPath {
        let shown = String::from_utf8_lossy(path).into_owned();
        let mut end = path.len();
        while end > 1 && path[end - 1] == b'/' {
            end -= 1;
        }
        let trimmed = &path[..end];
        let slash = path.len() > 1 && path.ends_with(b"/");
        let (parent, last) = match trimmed.iter().rposition(|b| *b == b'/') {
            Some(0) => (&b"/"[..], &trimmed[1..]),
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        let contents = trimmed == b"/" || last.is_empty() || last == b"." || last == b"..";
        ItemPath {
            full: trimmed.to_vec(),
            split: if contents {
                None
            } else {
                Some((parent.to_vec(), last.to_vec()))
            },
            slash,
            shown,
        }
    }
}

fn join_absolute(comps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(p: &ItemPath) -> Option<(String, String)> {
        p.split.as_ref().map(|(a, b)| {
            (
                String::from_utf8_lossy(a).into_owned(),
                String::from_utf8_lossy(b).into_owned(),
            )
        })
    }

    #[test]
    fn container_paths_are_absolute_and_cleaned() {
        let p = ItemPath::container(b"/etc/../etc/hostname", "/");
        assert_eq!(p.full, b"/etc/hostname");
        assert_eq!(split(&p), Some(("/etc".into(), "hostname".into())));
        assert!(!p.slash);
        let p = ItemPath::container(b"data/", "/srv");
        assert_eq!(p.full, b"/srv/data");
        assert!(p.slash);
        assert_eq!(split(&p), Some(("/srv".into(), "data".into())));
        let p = ItemPath::container(b"/../../x", "/");
        assert_eq!(p.full, b"/x");
        assert_eq!(split(&p), Some(("/".into(), "x".into())));
    }

    #[test]
    fn a_trailing_dot_or_the_root_names_the_contents() {
        for (path, full) in [
            (&b"/srv/."[..], &b"/srv"[..]),
            (b"/", b"/"),
            (b".", b"/work"),
        ] {
            let p = ItemPath::container(path, "/work");
            assert_eq!(p.full, full, "{}", p.shown);
            assert_eq!(p.split, None, "{}", p.shown);
        }
        for path in [&b"dir/."[..], b".", b"..", b"/", b"a/.."] {
            assert_eq!(ItemPath::host(path).split, None, "{path:?}");
        }
    }

    #[test]
    fn host_paths_keep_their_form() {
        let p = ItemPath::host(b"out/dir/");
        assert_eq!(p.full, b"out/dir");
        assert!(p.slash);
        assert_eq!(split(&p), Some(("out".into(), "dir".into())));
        let p = ItemPath::host(b"file");
        assert_eq!(split(&p), Some((".".into(), "file".into())));
        let p = ItemPath::host(b"/file");
        assert_eq!(split(&p), Some(("/".into(), "file".into())));
        assert!(!p.slash);
    }
}
