//! The setuid `newuidmap`/`newgidmap` helpers: where they are looked for
//! and whether they can map other ids.

use rustix::fs::StatVfsMountFlags;
use std::fs;
use std::path::{Path, PathBuf};

/// Facts about a `newuidmap`/`newgidmap` binary found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub path: PathBuf,
    /// `st_mode` (permission and setuid bits included).
    pub mode: u32,
    /// Owner uid.
    pub owner: u32,
    /// A `security.capability` xattr is present (file capabilities, Fedora/Arch style).
    pub file_caps: bool,
    /// The file lives on a `nosuid` mount, where neither setuid nor file caps apply.
    pub nosuid_mount: bool,
}

impl Helper {
    /// Looks for `name` in `dirs` (first regular file wins) and records its facts.
    pub fn find(name: &str, dirs: &[PathBuf]) -> Option<Helper> {
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
    pub fn privileged(&self) -> bool {
        let setuid_root = self.mode & libc::S_ISUID != 0 && self.owner == 0;
        !self.nosuid_mount && (setuid_root || self.file_caps)
    }

    pub fn describe(&self) -> String {
        let how = if self.nosuid_mount {
            "on a nosuid mount, so its privileges do not apply"
        } else if self.mode & libc::S_ISUID != 0 && self.owner == 0 {
            "setuid root"
        } else if self.file_caps {
            "with file capabilities"
        } else {
            "neither setuid root nor with file capabilities"
        };
        format!("{} ({how})", self.path.display())
    }
}

/// Where `newuidmap`/`newgidmap` are looked for: PATH, then the usual
/// system directories (check and the launcher use the same list).
pub fn helper_dirs() -> Vec<PathBuf> {
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
