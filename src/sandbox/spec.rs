//! `SandboxSpec`: the fully resolved, serialisable description of one run.
//!
//! Image config + profile + command-line flags + host facts are merged
//! into a spec by src/run (`run::resolve`); the launcher (`launch.rs`) only
//! executes a spec and decides nothing: every value here is final and
//! typed (the seccomp level, the capability set, the parsed port
//! forwards, the DNS upstreams, the id-map helpers with their paths, the
//! command's `PATH`). `hutch run --dry-run` prints it as JSON, which makes
//! runs explainable and testable without starting anything; read back, the
//! JSON gives the launcher the same inputs.

use super::caps::{self, CapLevel};
use super::seccomp::SeccompLevel;
use crate::net::PortForward;
use crate::profile::{Limits, NetworkMode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxSpec {
    /// Container ID (64 hex digits).
    pub id: String,
    pub name: String,
    /// The image as the user named it, and what it resolved to (a
    /// manifest digest, or `host`).
    pub image: String,
    pub image_id: String,
    /// Profile name and where it came from.
    pub profile: String,
    pub rootfs: RootfsSpec,
    pub process: ProcessSpec,
    pub hostname: String,
    pub id_maps: IdMaps,
    /// Mounts on top of the root filesystem, in order.
    pub mounts: Vec<MountSpec>,
    pub network: NetworkMode,
    /// `--network slirp` details.
    pub net: NetSpec,
    pub security: SecuritySpec,
    /// rlimits and cgroup limits, as the profile resolved them.
    pub limits: Limits,
    /// Remove the container when it exits (`--rm`).
    pub remove: bool,
    /// What `hutch stop` sends first: `--stop-signal`, else the image's
    /// StopSignal (a name or number, as written); None: SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `hutch stop` waits before SIGKILL when
    /// not given `-t`; None: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RootfsSpec {
    /// Read-only layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Their DiffIDs (empty for `host`).
    pub layers: Vec<String>,
    /// The container's writable layer and its scratch dir.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where hutch mounts the overlay in its private mount namespace.
    pub mountpoint: PathBuf,
    /// The container's generated hosts, hostname and resolv.conf (see
    /// [`super::etc_files`]), bound over the image's.
    pub etc: PathBuf,
    pub read_only: bool,
    /// The lower is the host's own root: hide the host's home and runtime
    /// directories (`/home`, `/root`, `/run`, `/tmp`, `/var/tmp`) behind
    /// empty tmpfs mounts unless the profile mounts them.
    pub host: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in the container's `PATH` when it has
    /// no '/'.
    pub args: Vec<String>,
    /// `KEY=VALUE`, final: `PATH` is always set (the image's or Docker's
    /// default), and is where a bare `args[0]` is looked up.
    pub env: Vec<String>,
    pub cwd: String,
    pub user: UserSpec,
    /// `-t`: a pseudo-terminal.
    pub terminal: bool,
    /// `-i`: keep stdin open (without it the command's stdin is /dev/null).
    pub stdin: bool,
    /// `--preserve-fds N`: descriptors 3..3+N of hutch's caller reach the
    /// command; every other descriptor above 2 is closed.
    #[serde(default)]
    pub preserve_fds: u32,
    /// Lines appended to the image's /etc/passwd and /etc/group (in the
    /// container's upper layer) so that the user has a name inside:
    /// `keep_id`'s entries, as Podman's keep-id adds them.
    #[serde(default)]
    pub add_accounts: AddAccounts,
    /// No command (`args` is empty): the container's init only waits,
    /// reaping what `exec` starts in it, until it gets TERM, INT, HUP or
    /// QUIT, and then exits 0 (Podman's pause container). A project's
    /// environment runs so, for `hutch shell` to join.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
}

impl ProcessSpec {
    /// The directories of the command's `PATH`, where a bare `args[0]` is
    /// looked up (none when the environment has no `PATH`).
    pub fn search_path(&self) -> Vec<String> {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .map(|p| p.split(':').map(String::from).collect())
            .unwrap_or_default()
    }
}

/// `name:x:uid:gid:...` lines for /etc/passwd and /etc/group; empty where
/// the image already has the id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AddAccounts {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// For messages only.
    pub name: String,
}

/// One line of a uid or gid map: ids `inside..inside+count` in the
/// container are `outside..outside+count` on the host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
    /// Written by `newuidmap`/`newgidmap` (a subordinate id range), found
    /// at these paths when the run was planned; `None`: by hutch itself
    /// (one id each, setgroups denied).
    pub helper: Option<MapHelpers>,
}

/// The privileged helpers that write a subordinate id range into the maps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MapHelpers {
    pub newuidmap: PathBuf,
    pub newgidmap: PathBuf,
}

impl IdMaps {
    /// Whether container uid `id` exists in this mapping.
    pub fn maps_uid(&self, id: u32) -> bool {
        self.uid
            .iter()
            .any(|m| id >= m.inside && (id - m.inside) < m.count)
    }

    pub fn maps_gid(&self, id: u32) -> bool {
        self.gid
            .iter()
            .any(|m| id >= m.inside && (id - m.inside) < m.count)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    /// A host path (file or directory) bound into the container.
    Bind {
        source: PathBuf,
        destination: String,
        read_only: bool,
        /// Before binding, copy what the container's root has at
        /// `destination` into `source` (an empty, new named volume, as
        /// Docker fills one), owners and modes as the container sees them.
        /// The planner decides; the launcher only does it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        copy_up: bool,
    },
    /// A fresh tmpfs; `options` as for mount(8) (`size=64m,mode=1777`).
    Tmpfs {
        destination: String,
        options: String,
    },
}

impl MountSpec {
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. } | MountSpec::Tmpfs { destination, .. } => {
                destination
            }
        }
    }
}

/// The userspace network (`--network slirp`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetSpec {
    /// The host's loopback is reachable at 10.0.2.2 (and the host's own
    /// addresses at all).
    pub allow_host_loopback: bool,
    /// Private, shared and link-local destinations are refused.
    #[serde(default)]
    pub block_private: bool,
    pub mtu: u32,
    /// `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`, parsed, in the order
    /// given (a host port 0: a free one, chosen when bound).
    pub publish: Vec<PortForward>,
    /// Resolvers the DNS forwarder (10.0.2.3) relays to, in order: the
    /// host's /etc/resolv.conf, or `HUTCH_DNS_UPSTREAM` (empty unless the
    /// network is slirp).
    #[serde(default)]
    pub dns_upstreams: Vec<SocketAddr>,
    /// `--network container:NAME`: share that running container's network
    /// namespace (joining its user namespace, which owns it) instead of
    /// making one; its stack serves both.
    #[serde(default)]
    pub join: Option<NetJoin>,
    /// `--add-host NAME:IP`: lines added to the container's /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_hosts: Vec<HostEntry>,
}

/// One line added to /etc/hosts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostEntry {
    pub name: String,
    pub ip: std::net::IpAddr,
}

/// The container whose network a run shares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetJoin {
    /// Its name (for messages).
    pub container: String,
    /// Its directory in the store, where its join socket is.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecuritySpec {
    /// `default`, `strict` or `unconfined`.
    pub seccomp: SeccompLevel,
    /// Capabilities kept in the bounding, permitted and effective sets
    /// (for root in the container; a non-root user gets none).
    pub capabilities: CapabilitySet,
    /// Always on: setuid binaries and file capabilities cannot gain
    /// privileges.
    pub no_new_privs: bool,
    /// Landlock path rules (container paths), when enabled.
    pub landlock: Option<LandlockSpec>,
    /// Without `-t`: the command gets hutch's terminal as it is (true), or
    /// pipes hutch relays to and from it (false).
    #[serde(default = "yes")]
    pub share_terminal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LandlockSpec {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

/// A set of capabilities (bit N = capability N), resolved from a
/// profile's names; written as the names (`CAP_CHOWN`, ...) in the
/// kernel's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySet {
    mask: u64,
}

impl CapabilitySet {
    /// The set `level` keeps (names are checked here).
    pub fn of(level: &CapLevel) -> anyhow::Result<CapabilitySet> {
        Ok(CapabilitySet {
            mask: caps::keep_mask(level)?,
        })
    }

    /// Bit N = capability N.
    pub fn mask(self) -> u64 {
        self.mask
    }

    /// `CAP_...` names, in the kernel's order.
    pub fn names(self) -> Vec<String> {
        caps::mask_names(self.mask)
    }
}

impl Serialize for CapabilitySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CapabilitySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CapabilitySet, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        CapabilitySet::of(&CapLevel::List(names)).map_err(serde::de::Error::custom)
    }
}
