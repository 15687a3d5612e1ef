//! `-u USER[:GROUP]`: names and numbers looked up in the image's own
//! /etc/passwd and /etc/group, read straight from the layers (top layer
//! first, whiteouts respected) so that `--dry-run` needs no mount; and the
//! host's group names for `keep_id`.

use crate::overlay::format;
use crate::sandbox::spec::{AddAccounts, UserSpec};
use anyhow::{Result, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Largest /etc/passwd or /etc/group read from an image (a bigger one is
/// treated as absent).
const MAX_ACCOUNTS_FILE: u64 = 4 << 20;

/// The content of `rel` (e.g. `etc/passwd`) as the merged image shows it,
/// from layers (or a container's upper dir) that may be hostile: every
/// lookup is `openat2(layer, rel, RESOLVE_IN_ROOT)`, so a symlink (`etc`
/// or the file itself) stays inside its layer instead of reaching the
/// host, and only a regular file of at most 4 MiB is read (never a FIFO
/// or a device). A whiteout, or something else than a regular file, in a
/// higher layer hides the lower ones.
pub(crate) fn image_file(lowers: &[PathBuf], rel: &str) -> Option<Vec<u8>> {
    read_regular(&layer_with(lowers, rel)?, Path::new(rel))
}

/// Whether the merged image has a regular file at `rel` (e.g.
/// `bin/bash`), found as [`image_file`] finds one, without reading it.
pub(crate) fn image_has_file(lowers: &[PathBuf], rel: &str) -> bool {
    layer_with(lowers, rel)
        .and_then(|root| open_in(&root, Path::new(rel), OFlags::PATH).ok())
        .and_then(|fd| rustix::fs::fstat(&fd).ok())
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
}

/// The root of the topmost layer that has `rel` (its parent resolved in
/// that layer); None when no layer has it or a whiteout hides it.
fn layer_with(lowers: &[PathBuf], rel: &str) -> Option<OwnedFd> {
    let rel = Path::new(rel);
    let name = rel.file_name()?.as_encoded_bytes();
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    let mut wh = format::WHITEOUT_PREFIX.to_vec();
    wh.extend_from_slice(name);
    let wh = std::ffi::OsStr::from_bytes(&wh);
    for layer in lowers {
        let Ok(root) = rustix::fs::open(
            layer,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let parent = parent.unwrap_or(Path::new("."));
        let Ok(dir) = open_in(&root, parent, OFlags::PATH | OFlags::DIRECTORY) else {
            continue;
        };
        let file = std::ffi::OsStr::from_bytes(name);
        match rustix::fs::statat(&dir, file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if format::is_whiteout_stat(&st) => return None,
            Ok(_) => return Some(root),
            Err(_) => {}
        }
        if rustix::fs::statat(&dir, wh, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return None;
        }
    }
    None
}

/// `openat2(root, rel, RESOLVE_IN_ROOT)`: `rel` with `root` as `/` for
/// absolute symlinks and `..`.
fn open_in(root: &OwnedFd, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        // EAGAIN: a rename somewhere raced a `..`; the kernel asks to retry.
        match rustix::fs::openat2(
            root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN) if tries < 100 => tries += 1,
            other => return other,
        }
    }
}

/// The regular file `rel` below `root` (symlinks resolved inside it), at
/// most [`MAX_ACCOUNTS_FILE`] bytes; None for anything else.
fn read_regular(root: &OwnedFd, rel: &Path) -> Option<Vec<u8>> {
    // NONBLOCK: opening a FIFO for reading must not wait for a writer.
    let fd = open_in(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_size as u64 > MAX_ACCOUNTS_FILE
    {
        return None;
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_ACCOUNTS_FILE + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_ACCOUNTS_FILE).then_some(out)
}

/// The name of group `gid` in the host's /etc/group.
pub(crate) fn host_group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    parse_group(&text)
        .into_iter()
        .find(|g| g.gid == gid)
        .map(|g| g.name)
}

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

pub(crate) fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then_some(())?;
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupEntry {
    pub(crate) name: String,
    pub(crate) gid: u32,
    pub(crate) members: Vec<String>,
}

pub(crate) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then_some(())?;
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// The image's users and groups.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    pub(crate) passwd: Vec<PasswdEntry>,
    pub(crate) group: Vec<GroupEntry>,
}

impl Accounts {
    pub(crate) fn of_image(lowers: &[PathBuf]) -> Accounts {
        let read = |rel| {
            image_file(lowers, rel)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Accounts {
            passwd: parse_passwd(&read("etc/passwd")),
            group: parse_group(&read("etc/group")),
        }
    }

    /// The entries `keep_id` adds for the user `name` (`uid`, primary
    /// group `gid` called `group`, home `home`): a passwd line unless the
    /// image has the uid, a group line unless it has the gid. Values that
    /// would break the file's format (':' or a newline, e.g. from a
    /// hostile `HOME`) are replaced, never written.
    pub(crate) fn keep_id_additions(
        &self,
        name: &str,
        uid: u32,
        gid: u32,
        group: &str,
        home: &str,
    ) -> AddAccounts {
        let field = |v: &str, fallback: &str| -> String {
            if v.is_empty() || v.contains([':', '\n', '\r', '\0']) {
                fallback.to_string()
            } else {
                v.to_string()
            }
        };
        let name = field(name, &uid.to_string());
        let group = field(group, &name);
        let home = field(home, "/");
        AddAccounts {
            passwd: (!self.passwd.iter().any(|p| p.uid == uid))
                .then(|| format!("{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n")),
            group: (!self.group.iter().any(|g| g.gid == gid))
                .then(|| format!("{group}:x:{gid}:\n")),
        }
    }

    pub(crate) fn home_of(&self, uid: u32) -> Option<&str> {
        self.passwd
            .iter()
            .find(|p| p.uid == uid)
            .map(|p| p.home.as_str())
    }

    /// Resolve `USER[:GROUP]` (names or numbers) as Docker does: a user
    /// name must exist in the image; a number need not; the group defaults
    /// to the user's primary group (0 for an unknown number); supplementary
    /// groups are the groups that list the user by name.
    pub(crate) fn resolve(&self, spec: &str) -> Result<UserSpec> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if u.is_empty() {
            bail!("--user {spec:?}: the user part is empty (use USER[:GROUP])");
        }
        let entry = match u.parse::<u32>() {
            Ok(n) => self
                .passwd
                .iter()
                .find(|p| p.uid == n)
                .cloned()
                .or(Some(PasswdEntry {
                    name: n.to_string(),
                    uid: n,
                    gid: 0,
                    home: "/".into(),
                })),
            Err(_) => self.passwd.iter().find(|p| p.name == u).cloned(),
        };
        let Some(entry) = entry else {
            bail!(
                "--user {spec:?}: no user {u:?} in the image's /etc/passwd (give a number to use an id that has no name)"
            );
        };
        let gid = match g {
            None => entry.gid,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => match self.group.iter().find(|e| e.name == g) {
                    Some(e) => e.gid,
                    None => bail!("--user {spec:?}: no group {g:?} in the image's /etc/group"),
                },
            },
        };
        let mut additional: Vec<u32> = self
            .group
            .iter()
            .filter(|e| e.members.contains(&entry.name) && e.gid != gid)
            .map(|e| e.gid)
            .collect();
        additional.sort_unstable();
        additional.dedup();
        Ok(UserSpec {
            uid: entry.uid,
            gid,
            additional_gids: if g.is_some() { Vec::new() } else { additional },
            name: entry.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nuser:x:1000:1000::/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:user\nuser:x:1000:\ntty:x:5:user,root\n";

    fn accounts() -> Accounts {
        Accounts {
            passwd: parse_passwd(PASSWD),
            group: parse_group(GROUP),
        }
    }

    #[test]
    fn keep_id_adds_what_the_image_lacks() {
        let a = accounts();
        let add = a.keep_id_additions("me", 1001, 1001, "mine", "/home/me");
        assert_eq!(
            add.passwd.as_deref(),
            Some("me:x:1001:1001:me:/home/me:/bin/sh\n")
        );
        assert_eq!(add.group.as_deref(), Some("mine:x:1001:\n"));
        // The image already knows uid 1000 and gid 100: nothing added.
        let add = a.keep_id_additions("me", 1000, 100, "users", "/home/me");
        assert_eq!(add, AddAccounts::default());
        // A hostile HOME or name cannot add lines or fields.
        let add = a.keep_id_additions(
            "a:b",
            2000,
            2000,
            "g\nroot:x:0:",
            "/x\nroot::0:0::/:/bin/sh",
        );
        assert_eq!(
            add.passwd.as_deref(),
            Some("2000:x:2000:2000:2000:/:/bin/sh\n")
        );
        assert_eq!(add.group.as_deref(), Some("2000:x:2000:\n"));
    }

    #[test]
    fn names_and_numbers() {
        let a = accounts();
        let u = a.resolve("user").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![5, 100])
        );
        let u = a.resolve("_apt").unwrap();
        assert_eq!((u.uid, u.gid), (42, 65534));
        let u = a.resolve("1000:users").unwrap();
        assert_eq!((u.uid, u.gid, u.name.as_str()), (1000, 100, "user"));
        let u = a.resolve("4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        let u = a.resolve("0:5").unwrap();
        assert_eq!((u.uid, u.gid), (0, 5));
        assert!(
            a.resolve("nobody")
                .unwrap_err()
                .to_string()
                .contains("no user")
        );
        assert!(
            a.resolve("user:nogroup")
                .unwrap_err()
                .to_string()
                .contains("no group")
        );
        assert_eq!(a.home_of(1000), Some("/home/user"));
    }

    #[test]
    fn image_file_respects_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let (top, low) = (d.path().join("top"), d.path().join("low"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::write(low.join("etc/passwd"), "low").unwrap();
        std::fs::write(low.join("etc/group"), "low group").unwrap();
        std::fs::write(top.join("etc/group"), "top group").unwrap();
        let l = vec![top.clone(), low.clone()];
        assert_eq!(image_file(&l, "etc/passwd").unwrap(), b"low");
        assert_eq!(image_file(&l, "etc/group").unwrap(), b"top group");
        assert!(image_has_file(&l, "etc/passwd") && !image_has_file(&l, "etc"));
        std::fs::write(top.join("etc/.wh.passwd"), "").unwrap();
        assert_eq!(image_file(&l, "etc/passwd"), None);
        assert_eq!(image_file(&l, "etc/shadow"), None);
        assert!(!image_has_file(&l, "etc/passwd") && !image_has_file(&l, "etc/shadow"));
        // A symlink to a regular file in its layer counts, one out of it does not.
        std::os::unix::fs::symlink("group", top.join("etc/sh")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", top.join("etc/host")).unwrap();
        assert!(image_has_file(&l, "etc/sh"));
        assert!(!image_has_file(&l, "etc/host"));
    }

    /// A hostile layer's symlinks stay inside it: neither `etc/passwd`
    /// nor a symlinked `etc` reads the host's files, and a FIFO or a huge
    /// file is not read. Control: the same names as regular files are.
    #[test]
    fn image_file_never_leaves_the_layer() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "root:x:0:0:host secret:/:/bin/sh\n").unwrap();
        let layer = d.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        symlink(&secret, layer.join("etc/passwd")).unwrap();
        symlink(
            "../../../../../../../..".to_string() + secret.to_str().unwrap(),
            layer.join("etc/group"),
        )
        .unwrap();
        let l = vec![layer.clone()];
        assert_eq!(image_file(&l, "etc/passwd"), None);
        assert_eq!(image_file(&l, "etc/group"), None);
        // A symlink inside the layer is followed inside it.
        std::fs::write(layer.join("etc/real"), "mine").unwrap();
        symlink("/etc/real", layer.join("etc/shadow")).unwrap();
        assert_eq!(image_file(&l, "etc/shadow").unwrap(), b"mine");
        // A symlinked directory: resolved inside the layer too.
        let other = d.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        symlink(d.path(), other.join("etc")).unwrap();
        assert_eq!(image_file(std::slice::from_ref(&other), "etc/secret"), None);
        // Control: a relative one to a directory of the layer is followed.
        std::fs::remove_file(other.join("etc")).unwrap();
        std::fs::create_dir_all(other.join("real-etc")).unwrap();
        std::fs::write(other.join("real-etc/secret"), "inside").unwrap();
        symlink("real-etc", other.join("etc")).unwrap();
        assert_eq!(image_file(&[other], "etc/secret").unwrap(), b"inside");
        // A FIFO is not opened for reading (that would wait forever).
        let fifo = d.path().join("fifo");
        std::fs::create_dir_all(fifo.join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.join("etc/passwd"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(image_file(&[fifo], "etc/passwd"), None);
        // Too big: absent.
        let big = d.path().join("big");
        std::fs::create_dir_all(big.join("etc")).unwrap();
        let f = std::fs::File::create(big.join("etc/passwd")).unwrap();
        f.set_len(MAX_ACCOUNTS_FILE + 1).unwrap();
        assert_eq!(image_file(std::slice::from_ref(&big), "etc/passwd"), None);
        f.set_len(10).unwrap();
        assert_eq!(image_file(&[big], "etc/passwd").unwrap(), vec![0u8; 10]);
    }
}
