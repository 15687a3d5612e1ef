//! The resolved profile: every key set, `extends` applied. What the
//! launcher reads; `hutch profile show` prints it back as TOML.

use super::{MountSpec, TmpfsSpec, display_source, file, parse_mount, parse_tmpfs};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A fully resolved profile: `extends` applied, every key set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// "built-in", or the path of the file the profile was read from.
    pub source: String,
    /// Keys and sections command-line flags may not weaken (see [`locks`]).
    #[serde(default)]
    pub locked: Vec<String>,
    pub filesystem: FilesystemPolicy,
    pub user: UserPolicy,
    pub network: NetworkPolicy,
    pub security: SecurityPolicy,
    pub limits: Limits,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesystemPolicy {
    /// Root filesystem read-only (writes only to tmpfs and mounts).
    pub read_only: bool,
    /// `HOST:CONTAINER[:ro|rw]`, unexpanded (see [`Profile::mount_specs`]).
    pub mounts: Vec<String>,
    /// `PATH[:OPTIONS]` (see [`parse_tmpfs`]).
    pub tmpfs: Vec<String>,
    /// Working directory inside; "" = the image's. May contain `${CWD}`.
    pub workdir: String,
    /// Mount the user's home directory at the same path, read-write.
    pub home: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserPolicy {
    /// Run as the invoking user's uid/gid and name (podman --userns=keep-id).
    pub keep_id: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub mode: NetworkMode,
    pub allow_host_loopback: bool,
    /// MTU of the container's eth0 with slirp.
    pub mtu: u32,
    /// slirp: refuse private, shared and link-local destinations (only the
    /// public internet and the DNS forwarder are reachable).
    pub block_private: bool,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            mode: NetworkMode::default(),
            allow_host_loopback: false,
            mtu: crate::net::DEFAULT_MTU as u32,
            block_private: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityPolicy {
    pub seccomp: SeccompMode,
    pub capabilities: CapabilityPolicy,
    /// Enable Landlock path rules (when the kernel supports Landlock).
    pub landlock: bool,
    /// Container paths readable and executable under Landlock.
    pub landlock_read: Vec<String>,
    /// Container paths writable (and readable) under Landlock.
    pub landlock_write: Vec<String>,
    /// "" = the container name.
    pub hostname: String,
    /// Without `-t`, hand the caller's terminal to the command as its
    /// stdin/stdout/stderr (false: hutch relays them through pipes, so the
    /// command can neither change the terminal's settings nor type into it).
    pub share_terminal: bool,
}

/// Resource limits; `None` = unlimited / inherited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// RLIMIT_NOFILE (soft = hard).
    pub nofile: Option<u64>,
    /// RLIMIT_NPROC.
    pub nproc: Option<u64>,
    /// RLIMIT_CORE, bytes.
    pub core: Option<u64>,
    /// cgroup v2 memory.max, bytes.
    pub memory: Option<u64>,
    /// cgroup v2 pids.max.
    pub pids: Option<u64>,
    /// cgroup v2 cpu.max, in CPUs.
    pub cpus: Option<f64>,
    /// Size at which a detached container's log is rotated (`ctr.log`
    /// becomes `ctr.log.1`); None: never. A spec.json from before this
    /// key gets the default.
    #[serde(default = "default_log_size_max")]
    pub log_size_max: Option<u64>,
}

/// The log cap of a profile that sets none: 10 MiB (Podman's
/// log_size_max is unlimited; this keeps a chatty service from filling
/// the disk).
pub const DEFAULT_LOG_SIZE_MAX: u64 = 10 << 20;

fn default_log_size_max() -> Option<u64> {
    Some(DEFAULT_LOG_SIZE_MAX)
}

impl Default for Limits {
    /// A profile's limits when it sets none: no limits, the log capped at
    /// [`DEFAULT_LOG_SIZE_MAX`].
    fn default() -> Limits {
        Limits {
            nofile: None,
            nproc: None,
            core: None,
            memory: None,
            pids: None,
            cpus: None,
            log_size_max: default_log_size_max(),
        }
    }
}

/// A string enum whose error message lists the allowed values.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// The profile spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// The allowed values, quoted: `"a", "b", "c"`.
            fn allowed() -> String {
                [$(concat!("\"", $text, "\"")),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "one of {}", $name::allowed())
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $($text => Ok($name::$variant),)+
                            _ => Err(E::custom(format!(
                                concat!("unknown ", $what, " \"{}\": expected one of {}"),
                                v,
                                $name::allowed()
                            ))),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_enum!(
    /// `[network] mode`.
    NetworkMode, "network mode" {
        /// Loopback only.
        #[default]
        None = "none",
        /// The host's network namespace (never for untrusted code).
        Host = "host",
        /// Userspace NAT through hutch (arrives with networking).
        Slirp = "slirp",
    }
);

string_enum!(
    /// `[security] seccomp`.
    SeccompMode, "seccomp mode" {
        /// Docker's default policy.
        #[default]
        Default = "default",
        /// The default policy minus rarely needed, risky calls.
        Strict = "strict",
        /// No filter.
        Unconfined = "unconfined",
    }
);

/// `[security] capabilities`: "default", "none", or a list of names
/// (normalised to upper-case `CAP_...`, without duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CapabilityPolicy {
    /// Docker's default set.
    #[default]
    Default,
    /// No capabilities.
    None,
    /// Exactly these.
    List(Vec<String>),
}

impl Serialize for CapabilityPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CapabilityPolicy::Default => s.serialize_str("default"),
            CapabilityPolicy::None => s.serialize_str("none"),
            CapabilityPolicy::List(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CapabilityPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "\"default\", \"none\" or a list of capability names like [\"CAP_CHOWN\"]";
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CapabilityPolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CapabilityPolicy, E> {
                match v {
                    "default" => Ok(CapabilityPolicy::Default),
                    "none" => Ok(CapabilityPolicy::None),
                    _ => Err(E::custom(format!(
                        "invalid capabilities \"{v}\": expected {EXPECTED}"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CapabilityPolicy, A::Error> {
                let mut caps: Vec<String> = Vec::new();
                while let Some(file::CapName(c)) = seq.next_element()? {
                    if !caps.contains(&c) {
                        caps.push(c);
                    }
                }
                Ok(CapabilityPolicy::List(caps))
            }
        }
        d.deserialize_any(V)
    }
}

impl Profile {
    /// The profile as a TOML file that loads back to the same profile
    /// (every key written out; `name` and `source` as comments).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let body = toml::to_string(&file::ProfileFile::from(self))?;
        // Say what an empty [limits] or [env] means.
        let lines: Vec<&str> = body.lines().collect();
        let mut body = String::new();
        for (i, line) in lines.iter().enumerate() {
            body.push_str(line);
            body.push('\n');
            let empty = lines.get(i + 1).is_none_or(|next| next.is_empty());
            match *line {
                "[limits]" if empty => body.push_str("# none: nothing is limited\n"),
                "[env]" if empty => body.push_str("# none: only the image's environment\n"),
                _ => {}
            }
        }
        Ok(format!(
            "# profile {} ({}), resolved\n{body}",
            self.name,
            display_source(&self.source)
        ))
    }

    /// The mounts, parsed, with `${CWD}` and `${HOME}` expanded; every host
    /// path must then be absolute.
    pub fn mount_specs(&self, cwd: &Path, home: &Path) -> anyhow::Result<Vec<MountSpec>> {
        self.filesystem
            .mounts
            .iter()
            .map(|m| {
                let spec = parse_mount(m)
                    .map_err(|e| anyhow::anyhow!("profile {}: {e}", self.name))?
                    .expand(cwd, home);
                for p in [&spec.host, &spec.container] {
                    if !p.starts_with('/') {
                        anyhow::bail!(
                            "profile {}: mount `{m}` gives the path `{p}`, which is not absolute \
                             (${{CWD}} = {}, ${{HOME}} = {})",
                            self.name,
                            cwd.display(),
                            home.display()
                        );
                    }
                }
                Ok(spec)
            })
            .collect()
    }

    /// The tmpfs entries, parsed.
    pub fn tmpfs_specs(&self) -> anyhow::Result<Vec<TmpfsSpec>> {
        self.filesystem
            .tmpfs
            .iter()
            .map(|t| parse_tmpfs(t).map_err(|e| anyhow::anyhow!("profile {}: {e}", self.name)))
            .collect()
    }
}
