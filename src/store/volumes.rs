//! Named volumes in the store: `volumes/<name>/`.
//!
//! ```text
//! volumes/<name>/volume.json   VolumeMeta (written atomically)
//! volumes/<name>/_data/        the volume's files, bind-mounted into the
//!                              containers that use it
//! ```
//!
//! A volume appears whole by one rename from `tmp/` and goes by one rename
//! back into `tmp/` before its files are removed, so a hutch killed at any
//! moment leaves no half volume listed. Volumes outlive containers: `hutch
//! rm` and `hutch prune` never touch them; `hutch volume rm` and `hutch
//! volume prune` do. Creating, removing and the runs that create a
//! container using volumes take `locks/volumes.lock` (runs shared, the
//! others exclusive, always before `containers.lock`), so a volume is never
//! removed between the check that no container uses it and its removal.
//!
//! Which containers use a volume is in their records
//! ([`ContainerState::volumes`](super::containers::ContainerState)).

use super::containers::{now_rfc3339, valid_name};
use super::remove::remove_tree;
use super::{Store, StoreLock, write_atomic};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a command could not act on a volume: the cases callers decide on
/// (`downcast_ref`), each with what to do next in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeError {
    /// No volume has this name.
    NotFound { name: String },
    /// Not a valid volume name.
    BadName { name: String },
    /// `volume create NAME` of a name that exists.
    Exists { name: String },
    /// Containers that exist use the volume (their names).
    InUse {
        name: String,
        containers: Vec<String>,
    },
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeError::NotFound { name } => {
                write!(f, "no volume {name:?}; `hutch volume ls` lists them")
            }
            VolumeError::BadName { name } => write!(
                f,
                "{name:?} is not a valid volume name: use letters, digits, '_', '.' and '-', \
                 starting with a letter or digit (at most 128)"
            ),
            VolumeError::Exists { name } => write!(
                f,
                "a volume {name:?} exists already; `hutch volume inspect {name}` shows it \
                 (--ignore accepts it as it is)"
            ),
            VolumeError::InUse { name, containers } => write!(
                f,
                "volume {name} is used by the container(s) {}; remove them first \
                 (`hutch rm {}`), or `hutch volume rm -f {name}` removes them and the volume",
                containers.join(", "),
                containers.join(" ")
            ),
        }
    }
}

impl std::error::Error for VolumeError {}

/// `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// No container has used it yet: the first one fills it with what its
    /// image has at the mount's path (as Podman's NeedsCopyUp).
    #[serde(default)]
    pub needs_copy_up: bool,
}

/// A volume as `volume ls` and `volume inspect` show it.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub meta: VolumeMeta,
    /// Its `_data` directory on the host.
    pub mountpoint: PathBuf,
    /// Names of the containers (existing, running or not) that use it.
    pub containers: Vec<String>,
}

/// Check a volume name (the rules of container names).
pub fn check_volume_name(name: &str) -> Result<(), VolumeError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(VolumeError::BadName { name: name.into() })
    }
}

impl Store {
    fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf> {
        check_volume_name(name)?;
        Ok(self.volumes_dir().join(name))
    }

    /// The directory holding a volume's files (whether it exists or not):
    /// what a container gets bind-mounted.
    pub fn volume_data(&self, name: &str) -> Result<PathBuf> {
        Ok(self.volume_dir(name)?.join("_data"))
    }

    /// Held by every command that creates a container using volumes
    /// (shared) and by `volume rm`/`prune` (exclusive).
    pub fn volumes_lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.lock_path("volumes");
        if exclusive {
            StoreLock::exclusive(&path)
        } else {
            StoreLock::shared(&path)
        }
    }

    /// A volume's metadata, `None` when there is no such volume (an
    /// invalid name is [`VolumeError::BadName`]).
    pub fn volume(&self, name: &str) -> Result<Option<VolumeMeta>> {
        let path = self.volume_dir(name)?.join("volume.json");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("reading {}: not a volume metadata file", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Make a new, empty volume. `name`: the user's, or a generated one
    /// (64 hex digits, as Docker's anonymous volumes).
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeMeta> {
        let name = match name {
            Some(n) => n.to_string(),
            None => super::containers::new_id()?,
        };
        let dir = self.volume_dir(&name)?;
        let meta = VolumeMeta {
            name: name.clone(),
            created: now_rfc3339(),
            labels,
            needs_copy_up: true,
        };
        let tmp = self.tmp_path("volume");
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(tmp.join("_data"))
                .with_context(|| format!("creating {}", tmp.display()))?;
            let bytes = serde_json::to_vec_pretty(&meta).context("encoding a volume's metadata")?;
            write_atomic(&tmp.join("volume.json"), &bytes)?;
            std::fs::create_dir_all(self.volumes_dir())
                .with_context(|| format!("creating {}", self.volumes_dir().display()))?;
            std::fs::rename(&tmp, &dir).map_err(|e| {
                use std::io::ErrorKind::{AlreadyExists, DirectoryNotEmpty};
                if matches!(e.kind(), AlreadyExists | DirectoryNotEmpty) {
                    anyhow::Error::new(VolumeError::Exists { name: name.clone() })
                } else {
                    anyhow::Error::new(e).context(format!("creating {}", dir.display()))
                }
            })
        })();
        if made.is_err() {
            let _ = remove_tree(&tmp);
        }
        made.with_context(|| format!("creating volume {name}"))?;
        Ok(meta)
    }

    /// The volume `name`, created when missing (`hutch run -v NAME:...`):
    /// its metadata and whether this call created it.
    pub fn ensure_volume(&self, name: &str) -> Result<(VolumeMeta, bool)> {
        if let Some(meta) = self.volume(name)? {
            return Ok((meta, false));
        }
        match self.create_volume(Some(name), BTreeMap::new()) {
            Ok(meta) => Ok((meta, true)),
            // Another run created it in between.
            Err(e) if matches!(e.downcast_ref(), Some(VolumeError::Exists { .. })) => self
                .volume(name)?
                .map(|m| (m, false))
                .ok_or_else(|| VolumeError::NotFound { name: name.into() }.into()),
            Err(e) => Err(e),
        }
    }

    /// A container has been made with this volume: later ones are not to
    /// fill it from their image.
    pub fn volume_copied_up(&self, name: &str) -> Result<()> {
        let Some(mut meta) = self.volume(name)? else {
            return Ok(());
        };
        if meta.needs_copy_up {
            meta.needs_copy_up = false;
            let bytes = serde_json::to_vec_pretty(&meta).context("encoding a volume's metadata")?;
            write_atomic(&self.volume_dir(name)?.join("volume.json"), &bytes)?;
        }
        Ok(())
    }

    /// Which existing containers use each volume (names).
    fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in self.list_containers()? {
            for v in c.state.volumes {
                users.entry(v).or_default().push(c.state.name.clone());
            }
        }
        Ok(users)
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<VolumeInfo>> {
        let dir = self.volumes_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut users = self.volume_users()?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Ok(Some(meta)) = self.volume(&name) {
                out.push(VolumeInfo {
                    mountpoint: e.path().join("_data"),
                    containers: users.remove(&name).unwrap_or_default(),
                    meta,
                });
            }
        }
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        Ok(out)
    }

    /// One volume, or [`VolumeError::NotFound`].
    pub fn find_volume(&self, name: &str) -> Result<VolumeInfo> {
        let meta = self
            .volume(name)?
            .ok_or_else(|| VolumeError::NotFound { name: name.into() })?;
        Ok(VolumeInfo {
            mountpoint: self.volume_data(name)?,
            containers: self.volume_users()?.remove(name).unwrap_or_default(),
            meta,
        })
    }

    /// Remove a volume no container uses ([`VolumeError::InUse`]
    /// otherwise). The caller holds [`volumes_lock`](Self::volumes_lock)
    /// exclusive.
    pub fn remove_volume(&self, name: &str, _lock: &StoreLock) -> Result<()> {
        let info = self.find_volume(name)?;
        if !info.containers.is_empty() {
            return Err(VolumeError::InUse {
                name: name.into(),
                containers: info.containers,
            }
            .into());
        }
        let dir = self.volume_dir(name)?;
        // Rename first so a crash midway leaves no half volume listed.
        let doomed = self.tmp_path("volume");
        std::fs::rename(&dir, &doomed).with_context(|| format!("removing {}", dir.display()))?;
        remove_tree(&doomed).with_context(|| {
            format!(
                "volume {name} is removed, but not all of its files: they are left in {} \
                 (files a container's non-root user made belong to your subordinate ids; \
                 `hutch prune` tries again)",
                doomed.display()
            )
        })?;
        Ok(())
    }

    /// Remove every volume no container uses: their names.
    pub fn prune_volumes(&self) -> Result<(Vec<String>, Vec<String>)> {
        let lock = self.volumes_lock(true)?;
        let mut removed = Vec::new();
        let mut warnings = Vec::new();
        for v in self.list_volumes()? {
            if !v.containers.is_empty() {
                continue;
            }
            match self.remove_volume(&v.meta.name, &lock) {
                Ok(()) => removed.push(v.meta.name),
                Err(e) => warnings.push(format!("{e:#}")),
            }
        }
        Ok((removed, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::containers::{ContainerState, Status, new_id};

    fn kind(e: anyhow::Error) -> Option<VolumeError> {
        e.downcast_ref::<VolumeError>().cloned()
    }

    #[test]
    fn create_list_use_remove() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let m = store.create_volume(Some("data"), labels.clone()).unwrap();
        assert_eq!(
            (m.name.as_str(), &m.labels, m.needs_copy_up),
            ("data", &labels, true)
        );
        assert!(store.volume_data("data").unwrap().is_dir());
        assert_eq!(
            store
                .create_volume(Some("data"), BTreeMap::new())
                .map_err(kind)
                .unwrap_err(),
            Some(VolumeError::Exists {
                name: "data".into()
            })
        );
        for bad in ["../x", "", "-x", "a/b", ".hidden"] {
            assert_eq!(
                store
                    .create_volume(Some(bad), BTreeMap::new())
                    .map_err(kind)
                    .unwrap_err(),
                Some(VolumeError::BadName { name: bad.into() }),
                "{bad}"
            );
        }
        let anon = store.create_volume(None, BTreeMap::new()).unwrap();
        assert_eq!(anon.name.len(), 64);
        let (again, created) = store.ensure_volume("data").unwrap();
        assert!(!created && again == m);
        let (_, created) = store.ensure_volume("fresh").unwrap();
        assert!(created);
        store.volume_copied_up("fresh").unwrap();
        assert!(!store.volume("fresh").unwrap().unwrap().needs_copy_up);
        let names: Vec<_> = store
            .list_volumes()
            .unwrap()
            .into_iter()
            .map(|v| v.meta.name)
            .collect();
        // Listed by name; the generated name is random hex, so it may sort
        // anywhere.
        let mut want = vec![anon.name.as_str(), "data", "fresh"];
        want.sort_unstable();
        assert_eq!(names, want);

        // A container using `data` keeps it.
        let id = new_id().unwrap();
        let (_, lock) = store
            .create_container(&id, Some("user"), |name| {
                Ok(ContainerState {
                    id: id.clone(),
                    name: name.into(),
                    image: "busybox".into(),
                    image_id: "sha256:00".into(),
                    layers: Vec::new(),
                    command: vec!["true".into()],
                    entrypoint: Vec::new(),
                    user: String::new(),
                    profile: "default".into(),
                    created: now_rfc3339(),
                    status: Status::Created,
                    pid: None,
                    exit_code: None,
                    finished: None,
                    ports: Vec::new(),
                    volumes: vec!["data".into()],
                    started: None,
                    detached: false,
                    restart_policy: Default::default(),
                    restart_count: 0,
                    stopped_by_user: false,
                })
            })
            .unwrap();
        drop(lock);
        assert_eq!(store.find_volume("data").unwrap().containers, ["user"]);
        let vlock = store.volumes_lock(true).unwrap();
        assert_eq!(
            store
                .remove_volume("data", &vlock)
                .map_err(kind)
                .unwrap_err(),
            Some(VolumeError::InUse {
                name: "data".into(),
                containers: vec!["user".into()]
            })
        );
        assert_eq!(
            store
                .remove_volume("nope", &vlock)
                .map_err(kind)
                .unwrap_err(),
            Some(VolumeError::NotFound {
                name: "nope".into()
            })
        );
        drop(vlock);
        let (removed, warnings) = store.prune_volumes().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(removed, [anon.name.as_str(), "fresh"]);
        // Removing the container frees the volume, which stays.
        store.remove_container("user", false).unwrap();
        assert!(store.find_volume("data").unwrap().containers.is_empty());
        let vlock = store.volumes_lock(true).unwrap();
        store.remove_volume("data", &vlock).unwrap();
        assert!(store.volume("data").unwrap().is_none());
        assert!(!store.volume_data("data").unwrap().exists());
    }
}
