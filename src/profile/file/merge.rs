//! Merging a file over the one it `extends`, resolving the result to a
//! [`Profile`] with defaults for what it leaves out, and turning a
//! profile back into a file.

use super::checked::{
    Count, Cpus, EnvName, EnvValue, HostnameValue, LockName, MountValue, Mtu, OneLine, PathValue,
    Size, TmpfsValue, Workdir,
};
use super::{
    FilesystemSection, LimitsSection, NetworkSection, ProfileFile, SecuritySection, UserSection,
};
use crate::profile::{
    FilesystemPolicy, Limits, NetworkPolicy, Profile, SecurityPolicy, UserPolicy,
};

/// The strings of an optional list of checked strings.
fn strings<T>(v: Option<Vec<T>>, f: fn(T) -> String) -> Vec<String> {
    v.unwrap_or_default().into_iter().map(f).collect()
}

/// `over`'s value where it has one, else `base`'s, field by field.
macro_rules! overlay {
    ($base:expr, $over:expr; $($field:ident),* $(,)?) => {{
        let (base, over) = ($base, $over);
        Self { $($field: over.$field.or(base.$field)),* }
    }};
}

/// Merge two optional sections with `merge`.
fn merge_opt<T>(base: Option<T>, over: Option<T>, merge: fn(T, T) -> T) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(merge(b, o)),
        (b, o) => o.or(b),
    }
}

impl FilesystemSection {
    fn merge(base: Self, over: Self) -> Self {
        overlay!(base, over; read_only, mounts, tmpfs, workdir, home)
    }
}
impl UserSection {
    fn merge(base: Self, over: Self) -> Self {
        overlay!(base, over; keep_id)
    }
}
impl NetworkSection {
    fn merge(base: Self, over: Self) -> Self {
        overlay!(base, over; mode, allow_host_loopback, mtu, block_private)
    }
}
impl SecuritySection {
    fn merge(base: Self, over: Self) -> Self {
        overlay!(base, over; seccomp, capabilities, landlock, landlock_read, landlock_write, hostname, share_terminal)
    }
}
impl LimitsSection {
    fn merge(base: Self, over: Self) -> Self {
        overlay!(base, over; nofile, nproc, core, memory, pids, cpus, log_size_max)
    }
}

impl ProfileFile {
    /// `over` applied on top of `base` (its parent through `extends`):
    /// scalar keys override, lists replace, `[env]` merges key by key.
    /// The result has no `extends`.
    pub fn merge(base: ProfileFile, over: ProfileFile) -> ProfileFile {
        let env = match (base.env, over.env) {
            (Some(mut b), Some(o)) => {
                b.extend(o);
                Some(b)
            }
            (b, o) => o.or(b),
        };
        ProfileFile {
            description: over.description.or(base.description),
            extends: None,
            locked: over.locked.or(base.locked),
            filesystem: merge_opt(base.filesystem, over.filesystem, FilesystemSection::merge),
            user: merge_opt(base.user, over.user, UserSection::merge),
            network: merge_opt(base.network, over.network, NetworkSection::merge),
            security: merge_opt(base.security, over.security, SecuritySection::merge),
            limits: merge_opt(base.limits, over.limits, LimitsSection::merge),
            env,
        }
    }

    /// The resolved profile: defaults for every key the file leaves out.
    pub fn resolve(self, name: &str, source: &str) -> Profile {
        let fs = self.filesystem.unwrap_or_default();
        let user = self.user.unwrap_or_default();
        let net = self.network.unwrap_or_default();
        let sec = self.security.unwrap_or_default();
        let lim = self.limits.unwrap_or_default();
        Profile {
            name: name.to_owned(),
            description: self.description.map(|d| d.0).unwrap_or_default(),
            source: source.to_owned(),
            locked: {
                let mut locked: Vec<String> = Vec::new();
                for l in self.locked.unwrap_or_default() {
                    if !locked.contains(&l.0) {
                        locked.push(l.0);
                    }
                }
                locked
            },
            filesystem: FilesystemPolicy {
                read_only: fs.read_only.unwrap_or(false),
                mounts: strings(fs.mounts, |m: MountValue| m.0),
                tmpfs: strings(fs.tmpfs, |t: TmpfsValue| t.0),
                workdir: fs.workdir.map(|w| w.0).unwrap_or_default(),
                home: fs.home.unwrap_or(false),
            },
            user: UserPolicy {
                keep_id: user.keep_id.unwrap_or(false),
            },
            network: NetworkPolicy {
                mode: net.mode.unwrap_or_default(),
                allow_host_loopback: net.allow_host_loopback.unwrap_or(false),
                mtu: net.mtu.map_or(crate::net::DEFAULT_MTU as u32, |m| m.0),
                block_private: net.block_private.unwrap_or(false),
            },
            security: SecurityPolicy {
                seccomp: sec.seccomp.unwrap_or_default(),
                capabilities: sec.capabilities.unwrap_or_default(),
                landlock: sec.landlock.unwrap_or(false),
                landlock_read: strings(sec.landlock_read, |p: PathValue| p.0),
                landlock_write: strings(sec.landlock_write, |p: PathValue| p.0),
                hostname: sec.hostname.map(|h| h.0).unwrap_or_default(),
                share_terminal: sec.share_terminal.unwrap_or(true),
            },
            limits: Limits {
                nofile: lim.nofile.and_then(|c| c.0),
                nproc: lim.nproc.and_then(|c| c.0),
                core: lim.core.and_then(|c| c.0),
                memory: lim.memory.and_then(|c| c.0),
                pids: lim.pids.and_then(|c| c.0),
                cpus: lim.cpus.and_then(|c| c.0),
                log_size_max: lim
                    .log_size_max
                    .map_or(Some(crate::profile::DEFAULT_LOG_SIZE_MAX), |c| c.0),
            },
            env: self
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.0, v.0))
                .collect(),
        }
    }
}

impl From<&Profile> for ProfileFile {
    /// Every key spelled out (limits only where set), without `extends`:
    /// the file that `hutch profile show` prints, loadable as it is.
    fn from(p: &Profile) -> ProfileFile {
        let strings = |v: &[String]| v.to_vec();
        let wrap = |v: &[String], f: fn(String) -> PathValue| -> Vec<PathValue> {
            v.iter().cloned().map(f).collect()
        };
        ProfileFile {
            description: Some(OneLine(p.description.clone())),
            extends: None,
            locked: Some(p.locked.iter().cloned().map(LockName).collect()),
            filesystem: Some(FilesystemSection {
                read_only: Some(p.filesystem.read_only),
                mounts: Some(
                    strings(&p.filesystem.mounts)
                        .into_iter()
                        .map(MountValue)
                        .collect(),
                ),
                tmpfs: Some(
                    strings(&p.filesystem.tmpfs)
                        .into_iter()
                        .map(TmpfsValue)
                        .collect(),
                ),
                workdir: Some(Workdir(p.filesystem.workdir.clone())),
                home: Some(p.filesystem.home),
            }),
            user: Some(UserSection {
                keep_id: Some(p.user.keep_id),
            }),
            network: Some(NetworkSection {
                mode: Some(p.network.mode),
                allow_host_loopback: Some(p.network.allow_host_loopback),
                mtu: Some(Mtu(p.network.mtu)),
                block_private: Some(p.network.block_private),
            }),
            security: Some(SecuritySection {
                seccomp: Some(p.security.seccomp),
                capabilities: Some(p.security.capabilities.clone()),
                landlock: Some(p.security.landlock),
                landlock_read: Some(wrap(&p.security.landlock_read, PathValue)),
                landlock_write: Some(wrap(&p.security.landlock_write, PathValue)),
                hostname: Some(HostnameValue(p.security.hostname.clone())),
                share_terminal: Some(p.security.share_terminal),
            }),
            limits: Some(LimitsSection {
                nofile: p.limits.nofile.map(|n| Count(Some(n))),
                nproc: p.limits.nproc.map(|n| Count(Some(n))),
                core: p.limits.core.map(|n| Size(Some(n))),
                memory: p.limits.memory.map(|n| Size(Some(n))),
                pids: p.limits.pids.map(|n| Count(Some(n))),
                cpus: p.limits.cpus.map(|n| Cpus(Some(n))),
                log_size_max: Some(Size(p.limits.log_size_max)),
            }),
            env: Some(
                p.env
                    .iter()
                    .map(|(k, v)| (EnvName(k.clone()), EnvValue(v.clone())))
                    .collect(),
            ),
        }
    }
}
