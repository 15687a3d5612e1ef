//! `hutch.toml` as written: the schema (every struct denies unknown keys)
//! and the value types that check themselves. Rules between keys (image or
//! build, `depends_on`) are checked when resolving, in `resolve.rs`.

use super::checked::{
    CommandLine, CommandValue, ContainerPath, EnvText, HostPath, ImageRef, MountValue,
    PlatformValue, PortValue, ProfileName, Seconds, ServiceName, StageName, TcpPort,
};
use crate::profile::EnvName;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The top-level tables of `hutch.toml`.
pub(super) const SECTIONS: [&str; 2] = ["env", "services"];

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestFile {
    /// Platforms `hutch lock` resolves images for, besides the host's.
    pub platforms: Option<Vec<PlatformValue>>,
    /// The environment (required).
    pub env: Option<EnvSection>,
    /// The services, by name.
    #[serde(default)]
    pub services: BTreeMap<Spanned<ServiceName>, ServiceSection>,
}

/// `[env]`: the container `hutch shell` enters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnvSection {
    pub image: Option<Spanned<ImageRef>>,
    pub build: Option<Spanned<HostPath>>,
    pub context: Option<Spanned<HostPath>>,
    pub args: Option<Spanned<BTreeMap<EnvName, EnvText>>>,
    pub target: Option<Spanned<StageName>>,
    pub profile: Option<ProfileName>,
    pub mounts: Option<Vec<MountValue>>,
    pub env: Option<BTreeMap<EnvName, EnvText>>,
    pub ports: Option<Vec<Spanned<PortValue>>>,
    pub shell: Option<ContainerPath>,
    pub setup: Option<Vec<CommandLine>>,
    pub workdir: Option<ContainerPath>,
}

/// `[services.NAME]`: a container beside the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceSection {
    pub image: Option<Spanned<ImageRef>>,
    pub build: Option<Spanned<HostPath>>,
    pub context: Option<Spanned<HostPath>>,
    pub args: Option<Spanned<BTreeMap<EnvName, EnvText>>>,
    pub target: Option<Spanned<StageName>>,
    pub env: Option<BTreeMap<EnvName, EnvText>>,
    pub command: Option<CommandValue>,
    pub volumes: Option<Vec<MountValue>>,
    pub ready: Option<Spanned<ReadySection>>,
    pub depends_on: Option<Vec<Spanned<ServiceName>>>,
    pub ports: Option<Vec<Spanned<PortValue>>>,
}

/// `ready = { command = "..." }` or `ready = { tcp = PORT }`, with an
/// optional `timeout`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadySection {
    pub command: Option<CommandLine>,
    pub tcp: Option<TcpPort>,
    pub timeout: Option<Seconds>,
}
