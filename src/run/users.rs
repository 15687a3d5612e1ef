//! `-u USER[:GROUP]`: names and numbers looked up in the image's own
//! /etc/passwd and /etc/group, read straight from the layers (top layer
//! first, whiteouts respected) so that `--dry-run` needs no mount; and the
//! host's group names for `keep_id`.

use crate::overlay::format;
use crate::sandbox::spec::{AddAccounts, UserSpec};
use anyhow::{Result, bail};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The content of `rel` (e.g. `etc/passwd`) as the merged image shows it.
pub(crate) fn image_file(lowers: &[PathBuf], rel: &str) -> Option<Vec<u8>> {
    let rel = Path::new(rel);
    let name = rel.file_name()?.as_encoded_bytes();
    let mut wh = format::WHITEOUT_PREFIX.to_vec();
    wh.extend_from_slice(name);
    let wh = std::ffi::OsStr::from_bytes(&wh);
    for layer in lowers {
        let p = layer.join(rel);
        match rustix::fs::lstat(&p) {
            Ok(st) if format::is_whiteout_stat(&st) => return None,
            Ok(_) => return std::fs::read(&p).ok(),
            Err(_) => {}
        }
        if let Some(parent) = p.parent()
            && parent.join(wh).symlink_metadata().is_ok()
        {
            return None;
        }
    }
    None
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
        std::fs::write(top.join("etc/.wh.passwd"), "").unwrap();
        assert_eq!(image_file(&l, "etc/passwd"), None);
        assert_eq!(image_file(&l, "etc/shadow"), None);
    }
}
