//! The profile file as written: every key optional, so that `extends` can
//! merge a file over its parent. Values are checked while they are read,
//! so that a bad value's error carries the span of that value (and from it
//! the line and key) rather than the span of its whole section.

use super::values;
use super::{
    CapabilityPolicy, FilesystemPolicy, Limits, NetworkMode, NetworkPolicy, Profile, ProfileError,
    SeccompMode, SecurityPolicy, UserPolicy,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// A string newtype whose value is checked (and possibly normalised) by
/// `$check: fn(&str) -> Result<String, String>` as it is deserialised.
macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $expecting:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub String);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        let check: fn(&str) -> Result<String, String> = $check;
                        check(v).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

checked_string!(
    /// `description`: one line.
    OneLine,
    "a one-line string",
    |s| {
        if s.contains('\n') {
            Err("the description must be a single line".into())
        } else {
            Ok(s.to_owned())
        }
    }
);
checked_string!(
    /// `extends`: a profile name or a path to a file.
    ExtendsName,
    "a profile name like \"dev\", or a path to a .toml file",
    |s| {
        if !values::is_path(s) {
            values::check_profile_name(s)?;
        }
        Ok(s.to_owned())
    }
);
checked_string!(
    /// One entry of `locked`: a lockable key or a section (see locks.rs).
    LockName,
    "a key to lock like \"network.mode\", or a section like \"network\"",
    super::locks::check_lock_name
);
checked_string!(
    /// A container path (`landlock_read`, `landlock_write`).
    PathValue,
    "an absolute path (may start with ${CWD} or ${HOME})",
    |s| values::check_path(s, "path").map(|_| s.to_owned())
);
checked_string!(
    /// `workdir`: "" or a path.
    Workdir,
    "an absolute path (may start with ${CWD}), or \"\" for the image's",
    |s| {
        if !s.is_empty() {
            values::check_path(s, "workdir")?;
        }
        Ok(s.to_owned())
    }
);
checked_string!(
    /// `HOST:CONTAINER[:ro|rw]`.
    MountValue,
    "a mount \"HOST:CONTAINER[:ro|rw]\"",
    |s| values::parse_mount(s).map(|_| s.to_owned())
);
checked_string!(
    /// `PATH[:OPTIONS]`.
    TmpfsValue,
    "a tmpfs path like \"/tmp\" or \"/tmp:size=64m\"",
    |s| values::parse_tmpfs(s).map(|_| s.to_owned())
);
checked_string!(
    /// `hostname`.
    HostnameValue,
    "a host name, or \"\" for the container name",
    |s| values::check_hostname(s).map(|_| s.to_owned())
);
checked_string!(
    /// A key of `[env]`.
    EnvName,
    "an environment variable name",
    |s| values::check_env_name(s).map(|_| s.to_owned())
);
checked_string!(
    /// A value of `[env]`.
    EnvValue,
    "a string",
    |s| {
        if s.contains('\0') {
            Err("an environment variable value cannot contain a NUL byte".into())
        } else {
            values::check_variables(s).map(|_| s.to_owned())
        }
    }
);
checked_string!(
    /// One capability name, normalised to `CAP_...`.
    CapName,
    "a capability name like \"CAP_CHOWN\"",
    values::normalise_capability
);

const UNLIMITED: &str = "unlimited";

/// A count limit (`nofile`, `nproc`, `pids`): at least 1; `None` is
/// "unlimited" (removes a limit set by an extended profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of at least 1, or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                if v < 1 {
                    return Err(E::custom(format!(
                        "{v} is too small: the limit must be at least 1 (or \"unlimited\")"
                    )));
                }
                Ok(Count(Some(v as u64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                if v == UNLIMITED {
                    Ok(Count(None))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str(UNLIMITED),
        }
    }
}

/// The MTU of the container's eth0 (`[network] mtu`): 1280 (IPv6's
/// minimum) to 65520 (the largest a TAP device takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Mtu(pub u32);

impl<'de> Deserialize<'de> for Mtu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(1280..=65520).contains(&v) {
            return Err(de::Error::custom(format!(
                "{v} is out of range: the MTU is 1280 to 65520"
            )));
        }
        Ok(Mtu(v as u32))
    }
}

/// A size in bytes (`core` with MIN = 0, `memory` with MIN = 1): an integer
/// or a string like "512M"; `None` is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size<const MIN: u64>(pub Option<u64>);

impl<'de, const MIN: u64> Deserialize<'de> for Size<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64>;
        impl<const MIN: u64> V<MIN> {
            fn check<E: de::Error>(v: u64) -> Result<Size<MIN>, E> {
                if v < MIN {
                    return Err(E::custom(format!(
                        "{v} is too small: the size must be at least {MIN} byte (or \"unlimited\")"
                    )));
                }
                Ok(Size(Some(v)))
            }
        }
        impl<const MIN: u64> Visitor<'_> for V<MIN> {
            type Value = Size<MIN>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a size: a number of bytes, or a string like \"512M\" (K, M, G, T are \
                     binary), or \"unlimited\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size<MIN>, E> {
                if v < 0 {
                    return Err(E::custom(format!(
                        "{v} is negative: a size must be at least {MIN}"
                    )));
                }
                Self::check(v as u64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size<MIN>, E> {
                Self::check(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size<MIN>, E> {
                if v == UNLIMITED {
                    return Ok(Size(None));
                }
                Self::check(values::parse_size(v).map_err(E::custom)?)
            }
        }
        d.deserialize_any(V::<MIN>)
    }
}

impl<const MIN: u64> Serialize for Size<MIN> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str(UNLIMITED),
            Some(n) => {
                let text = values::format_size(n);
                if text.bytes().all(|b| b.is_ascii_digit()) {
                    s.serialize_u64(n)
                } else {
                    s.serialize_str(&text)
                }
            }
        }
    }
}

/// `cpus`: a positive number of CPUs (1.5 = one and a half); `None` is
/// "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cpus(pub Option<f64>);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs greater than 0 (like 2 or 1.5), or \"unlimited\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                if !(v.is_finite() && v > 0.0 && v <= 65536.0) {
                    return Err(E::custom(format!(
                        "cpus = {v} is out of range: give a number of CPUs greater than 0 \
                         (like 2 or 1.5), or \"unlimited\""
                    )));
                }
                Ok(Cpus(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
                if v == UNLIMITED {
                    Ok(Cpus(None))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_f64(n),
            None => s.serialize_str(UNLIMITED),
        }
    }
}

/// The strings of an optional list of checked strings.
fn strings<T>(v: Option<Vec<T>>, f: fn(T) -> String) -> Vec<String> {
    v.unwrap_or_default().into_iter().map(f).collect()
}

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
        overlay!(base, over; nofile, nproc, core, memory, pids, cpus)
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

/// Parse one profile file. `origin` names it in errors ("profile PATH" or
/// "built-in profile NAME").
pub fn parse(text: &str, origin: &str) -> Result<ProfileFile, ProfileError> {
    // Syntax first: its errors have no key of their own.
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(syntax_error(text, origin, &e)),
    };
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else {
            return ProfileError::Invalid {
                origin: origin.to_owned(),
                line: None,
                key: None,
                message: e.message().to_owned(),
            };
        };
        let line = line_of(text, span.start);
        let path = key_path(doc.get_ref(), span.start).unwrap_or_default();
        let message = e.message().trim_end();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            // serde: "unknown field `x`, expected one of `a`, `b`" (or "`a` or `b`").
            let (field, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
            let field = field.trim_end_matches('`');
            let place = match path.len() {
                0 | 1 => "at the top level".to_owned(),
                n => format!("in [{}]", path[..n - 1].join(".")),
            };
            let allowed = if expected.is_empty() {
                String::new()
            } else {
                format!(
                    "; allowed keys: {}",
                    expected.replace("one of ", "").replace("` or `", "`, `")
                )
            };
            return ProfileError::Invalid {
                origin: origin.to_owned(),
                line: Some(line),
                key: None,
                message: format!("unknown key `{field}` {place}{allowed}"),
            };
        }
        let message = match path.as_slice() {
            // A section given as a plain value or as an array of tables:
            // serde's message would name a Rust type or a field inside.
            [section]
                if SECTIONS.contains(&section.as_str()) && !is_table(doc.get_ref(), section) =>
            {
                format!(
                    "`{section}` must be a table: write [{section}] on a line of its own, \
                     then its keys"
                )
            }
            _ => message
                .replace("expected a sequence", "expected an array [...]")
                .replace("invalid type: sequence", "invalid type: array")
                .replace("invalid type: map", "invalid type: table"),
        };
        ProfileError::Invalid {
            origin: origin.to_owned(),
            line: Some(line),
            key: (!path.is_empty()).then(|| path.join(".")),
            message,
        }
    })
}

/// The tables of a profile file.
const SECTIONS: [&str; 6] = ["filesystem", "user", "network", "security", "limits", "env"];

fn is_table(doc: &toml::de::DeTable<'_>, key: &str) -> bool {
    doc.iter()
        .any(|(k, v)| k.get_ref() == key && matches!(v.get_ref(), toml::de::DeValue::Table(_)))
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose key or value covers byte `pos`, deepest first.
fn key_path(table: &toml::de::DeTable<'_>, pos: usize) -> Option<Vec<String>> {
    for (k, v) in table.iter() {
        let name = k.get_ref().to_string();
        if k.span().contains(&pos) {
            return Some(vec![name]);
        }
        let inner = match v.get_ref() {
            toml::de::DeValue::Table(t) => key_path(t, pos),
            toml::de::DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                toml::de::DeValue::Table(t) => key_path(t, pos),
                _ => None,
            }),
            _ => None,
        };
        if let Some(mut path) = inner {
            path.insert(0, name);
            return Some(path);
        }
        let span = v.span();
        if span.contains(&pos) || (span.is_empty() && span.start == pos) {
            return Some(vec![name]);
        }
    }
    None
}

/// A TOML syntax error: the line, the key written on that line (under its
/// `[section]`), and the text of the line.
fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ProfileError {
    let message = e.message().lines().next().unwrap_or("").trim().to_owned();
    let Some(span) = e.span() else {
        return ProfileError::Invalid {
            origin: origin.to_owned(),
            line: None,
            key: None,
            message: format!("invalid TOML: {message}"),
        };
    };
    let line = line_of(text, span.start);
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line - 1).copied().unwrap_or("").trim();
    let section = lines[..(line - 1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = if this.starts_with('[') {
        Some(
            this.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        )
    } else {
        this.split_once('=').map(|(k, _)| {
            let k = k.trim().trim_matches('"');
            match &section {
                Some(s) => format!("{s}.{k}"),
                None => k.to_owned(),
            }
        })
    };
    let shown: String = this.chars().take(80).collect();
    ProfileError::Invalid {
        origin: origin.to_owned(),
        line: Some(line),
        key: key.filter(|k| !k.is_empty()),
        message: format!("invalid TOML: {message} (the line reads `{shown}`)"),
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
