//! The profile file as written: every key optional, so that `extends` can
//! merge a file over its parent. Values are checked while they are read,
//! so that a bad value's error carries the span of that value (and from it
//! the line and key) rather than the span of its whole section.
//!
//! * `checked`: the value types, each checking what it reads.
//! * `merge`: `extends` (a file over its parent) and resolving to a
//!   [`Profile`](super::Profile), and the way back for `profile show`.
//! * `parse`: reading a file, with errors that name the line and key.

mod checked;
mod merge;
mod parse;
#[cfg(test)]
mod tests;

pub use checked::CapName;
pub(crate) use checked::{EnvName, checked_string};
pub use parse::{key_line, line_of, parse, parse_toml};

use crate::profile::{CapabilityPolicy, NetworkMode, SeccompMode};
use checked::{
    Count, Cpus, EnvValue, ExtendsName, HostnameValue, LockName, MountValue, Mtu, OneLine,
    PathValue, Size, TmpfsValue, Workdir,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// One profile file. Field names and sections are the file's schema; see
/// profiles/default.toml for what each key means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<OneLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<Spanned<ExtendsName>>,
    /// Keys command-line flags may not weaken (see locks.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<Vec<LockName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SecuritySection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<EnvName, EnvValue>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<MountValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<TmpfsValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<Workdir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_id: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_host_loopback: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_private: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilityPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock_read: Option<Vec<PathValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock_write: Option<Vec<PathValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<HostnameValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_terminal: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nofile: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nproc: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core: Option<Size<0>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size<1>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_size_max: Option<Size<1>>,
}
