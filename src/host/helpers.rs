//! The id-map helpers `newuidmap`/`newgidmap` (from the `uidmap` or
//! `shadow` package): where they are and whether they are privileged
//! enough to write other ids into a user namespace's maps.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::fs::StatVfsMountFlags;

/// Facts about a `newuidmap`/`newgidmap` binary found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Helper {
    pub(crate) path: PathBuf,
    /// `st_mode` (permission and setuid bits included).
    pub(crate) mode: u32,
    /// Owner uid.
    pub(crate) owner: u32,
    /// A `security.capability` xattr is present (file capabilities, Fedora/Arch style).
    pub(crate) file_caps: bool,
    /// The file lives on a `nosuid` mount, where neither setuid nor file caps apply.
    pub(crate) nosuid_mount: bool,
}

impl Helper {
    /// Looks for `name` in `dirs` (first regular file wins) and records its facts.
    pub(crate) fn find(name: &str, dirs: &[PathBuf]) -> Option<Helper> {
        use std::os::unix::fs::MetadataExt;
        dirs.iter().map(|d| d.join(name)).find_map(|path| {
            let meta = fs::metadata(&path).ok().filter(|m| m.is_file())?;
            let file_caps = rustix::fs::getxattr_query(&path, "security.capability").is_ok();
            let nosuid_mount = rustix::fs::statvfs(&path)
                .map(|s| s.f_flag.contains(StatVfsMountFlags::NOSUID))
                .unwrap_or(false);
            Some(Helper {
                mode: meta.mode(),
                owner: meta.uid(),
                file_caps,
                nosuid_mount,
                path,
            })
        })
    }

    /// Whether the helper can actually write other ids into a uid/gid map.
    pub(crate) fn privileged(&self) -> bool {
        let setuid_root = self.mode & libc::S_ISUID != 0 && self.owner == 0;
        !self.nosuid_mount && (setuid_root || self.file_caps)
    }
}

/// Where `newuidmap`/`newgidmap` are looked for: PATH, then the usual
/// system directories (`hutch check` and the run planning use the same list).
pub(crate) fn helper_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(d.into());
        }
    }
    dirs
}

/// Both `newuidmap` and `newgidmap`, when both are installed with the
/// privileges they need: their paths, as the launcher runs them.
pub(crate) fn privileged_pair() -> Option<(PathBuf, PathBuf)> {
    let dirs = helper_dirs();
    let u = Helper::find("newuidmap", &dirs).filter(Helper::privileged)?;
    let g = Helper::find("newgidmap", &dirs).filter(Helper::privileged)?;
    Some((u.path, g.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_find_in_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(b.join("newuidmap")).unwrap(); // a directory does not count
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("newuidmap"), "").unwrap();
        fs::set_permissions(a.join("newuidmap"), fs::Permissions::from_mode(0o755)).unwrap();
        let found = Helper::find("newuidmap", &[b.clone(), a.clone()]).unwrap();
        assert_eq!(found.path, a.join("newuidmap"));
        assert_eq!(found.mode & 0o7777, 0o755);
        assert!(!found.file_caps);
        assert!(Helper::find("newgidmap", &[a, b]).is_none());
    }
}
