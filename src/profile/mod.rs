//! Profiles: what a sandbox may see and do, in TOML.
//!
//! Built-in profiles are `profiles/*.toml`, compiled into the binary. User
//! profiles are `$XDG_CONFIG_HOME/hutch/profiles/NAME.toml` (default
//! `~/.config/hutch/profiles`) and override a built-in of the same name,
//! also where another profile `extends` that name. A name containing `/` or
//! ending in `.toml` is a path to a profile file.
//!
//! A file may `extends = "NAME"` another profile (chains allowed, cycles
//! refused); the file is applied on top of its parent: scalar keys
//! override, lists replace, `[env]` merges key by key. A user profile that
//! extends its own name (`dev.toml` with `extends = "dev"`) extends the
//! built-in of that name.
//!
//! [`load`] gives the resolved [`Profile`], with every key filled in. Paths
//! keep `${CWD}` and `${HOME}`; the launcher expands them with [`expand`]
//! (or [`Profile::mount_specs`]) when it knows both directories.

mod file;
pub mod locks;
pub mod values;

pub use values::{MountSpec, TmpfsSpec, expand, parse_mount, parse_tmpfs};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The profile `hutch run` uses when none is given.
pub const DEFAULT_PROFILE: &str = "default";

/// The built-in profiles: name and TOML text.
pub const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("dev", include_str!("../../profiles/dev.toml")),
    ("install", include_str!("../../profiles/install.toml")),
    ("untrusted", include_str!("../../profiles/untrusted.toml")),
];

/// `source` of a built-in profile.
pub const BUILTIN_SOURCE: &str = "built-in";

/// Longest `extends` chain followed (a guard; real cycles are reported).
const MAX_DEPTH: usize = 32;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// What went wrong while finding, reading or checking a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file's content: syntax, unknown key, bad value, bad `extends`.
    /// `origin` is "profile PATH" or "built-in profile NAME".
    #[error("{origin}{}: {message}", location(.line, .key))]
    Invalid {
        origin: String,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },
    #[error(
        "no profile named `{name}`: the built-in profiles are {builtins}; user profiles are \
         files NAME.toml in {user_dir}; `hutch profile list` shows them all"
    )]
    NotFound {
        name: String,
        builtins: String,
        user_dir: String,
    },
    #[error("cannot read profile {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    BadName(String),
}

fn location(line: &Option<usize>, key: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(l) = line {
        s.push_str(&format!(", line {l}"));
    }
    if let Some(k) = key {
        s.push_str(&format!(", key `{k}`"));
    }
    s
}

/// One row of `hutch profile list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    /// The resolved description ("" when the profile cannot be loaded).
    pub description: String,
    /// "built-in", or the path of the user's file.
    pub source: String,
    /// A user file of this name hides a built-in profile.
    pub overrides_builtin: bool,
    /// Why the profile cannot be loaded, if it cannot.
    pub error: Option<String>,
}

/// hutch's configuration directory: `$XDG_CONFIG_HOME/hutch`, else
/// `$HOME/.config/hutch`; `None` when neither is set.
pub fn config_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let config = env("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".config")))?;
    Some(config.join("hutch"))
}

/// The user's profile directory: `profiles/` in [`config_dir`].
pub fn user_dir() -> Option<PathBuf> {
    Some(config_dir()?.join("profiles"))
}

/// Load a profile by name (user file, else built-in) or by path, with
/// `extends` resolved and every value checked.
pub fn load(name_or_path: &str) -> anyhow::Result<Profile> {
    Ok(Catalog::from_env().load(name_or_path)?)
}

/// Every profile: built-ins and the user's, sorted by name.
pub fn list() -> anyhow::Result<Vec<ProfileInfo>> {
    Catalog::from_env().list()
}

/// `p` with the home directory written as `~` (for messages).
pub fn display_path(p: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty() && h != "/")
        && let Ok(rest) = p.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    p.display().to_string()
}

/// A profile's `source` for people: "built-in" or a `~` path.
pub fn display_source(source: &str) -> String {
    if source == BUILTIN_SOURCE {
        source.to_owned()
    } else {
        display_path(Path::new(source))
    }
}

/// Where one profile's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Builtin(&'static str, &'static str),
    File(PathBuf),
}

impl Origin {
    /// How errors name it.
    fn describe(&self) -> String {
        match self {
            Origin::Builtin(name, _) => format!("built-in profile {name}"),
            Origin::File(p) => format!("profile {}", display_path(p)),
        }
    }

    /// `Profile::source`.
    fn source(&self) -> String {
        match self {
            Origin::Builtin(..) => BUILTIN_SOURCE.to_owned(),
            Origin::File(p) => p.display().to_string(),
        }
    }

    fn read(&self) -> Result<Cow<'static, str>, ProfileError> {
        match self {
            Origin::Builtin(_, text) => Ok(Cow::Borrowed(text)),
            Origin::File(p) => {
                std::fs::read_to_string(p)
                    .map(Cow::Owned)
                    .map_err(|error| ProfileError::Read {
                        path: display_path(p),
                        error,
                    })
            }
        }
    }
}

/// Where profiles are looked up: the built-ins and one user directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    user_dir: Option<PathBuf>,
}

impl Catalog {
    /// Built-ins plus the profiles in `user_dir` (if any).
    pub fn new(user_dir: Option<PathBuf>) -> Catalog {
        Catalog { user_dir }
    }

    /// Built-ins plus [`user_dir`].
    pub fn from_env() -> Catalog {
        Catalog::new(user_dir())
    }

    /// See [`load`].
    pub fn load(&self, name_or_path: &str) -> Result<Profile, ProfileError> {
        let (origin, name) = if values::is_path(name_or_path) {
            let path = std::path::absolute(name_or_path).map_err(|error| ProfileError::Read {
                path: name_or_path.to_owned(),
                error,
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name_or_path.to_owned());
            (Origin::File(path), name)
        } else {
            values::check_profile_name(name_or_path).map_err(ProfileError::BadName)?;
            let origin = self
                .candidates(name_or_path)
                .into_iter()
                .next()
                .ok_or_else(|| self.not_found(name_or_path))?;
            (origin, name_or_path.to_owned())
        };
        let merged = self.resolve(&origin, &mut Vec::new())?;
        Ok(merged.resolve(&name, &origin.source()))
    }

    /// See [`list`].
    pub fn list(&self) -> anyhow::Result<Vec<ProfileInfo>> {
        let mut names: Vec<String> = BUILTINS.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(dir) = &self.user_dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    for entry in entries {
                        let path = entry?.path();
                        let (Some(stem), Some("toml")) = (
                            path.file_stem().and_then(|s| s.to_str()),
                            path.extension().and_then(|s| s.to_str()),
                        ) else {
                            continue;
                        };
                        if let Err(e) = values::check_profile_name(stem) {
                            tracing::warn!("ignoring {}: {e}", display_path(&path));
                            continue;
                        }
                        if path.is_file() && !names.iter().any(|n| n == stem) {
                            names.push(stem.to_owned());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot list the profiles in {}: {e}",
                        display_path(dir)
                    ));
                }
            }
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let candidates = self.candidates(&name);
            let Some(origin) = candidates.first() else {
                continue;
            };
            let overrides_builtin = matches!(origin, Origin::File(_))
                && candidates.iter().any(|c| matches!(c, Origin::Builtin(..)));
            let (description, error) = match self.load(&name) {
                Ok(p) => (p.description, None),
                Err(e) => (String::new(), Some(e.to_string())),
            };
            out.push(ProfileInfo {
                name,
                description,
                source: origin.source(),
                overrides_builtin,
                error,
            });
        }
        Ok(out)
    }

    /// Where `name` may come from, in order of precedence: the user's file,
    /// then the built-in.
    fn candidates(&self, name: &str) -> Vec<Origin> {
        let mut out = Vec::new();
        if let Some(dir) = &self.user_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                out.push(Origin::File(path));
            }
        }
        if let Some((n, text)) = BUILTINS.iter().find(|(n, _)| *n == name) {
            out.push(Origin::Builtin(n, text));
        }
        out
    }

    fn not_found(&self, name: &str) -> ProfileError {
        ProfileError::NotFound {
            name: name.to_owned(),
            builtins: BUILTINS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            user_dir: self
                .user_dir
                .as_deref()
                .map(display_path)
                .unwrap_or_else(|| "~/.config/hutch/profiles (HOME is not set)".into()),
        }
    }

    /// The file at `origin` merged over everything it extends.
    fn resolve(
        &self,
        origin: &Origin,
        chain: &mut Vec<Origin>,
    ) -> Result<file::ProfileFile, ProfileError> {
        chain.push(origin.clone());
        let text = origin.read()?;
        let mut parsed = file::parse(&text, &origin.describe())?;
        let Some(extends) = parsed.extends.take() else {
            return Ok(parsed);
        };
        let target = extends.get_ref().0.as_str();
        let invalid = |message: String| ProfileError::Invalid {
            origin: origin.describe(),
            line: Some(file::line_of(&text, extends.span().start)),
            key: Some("extends".into()),
            message,
        };
        let parent = if values::is_path(target) {
            let Origin::File(me) = origin else {
                return Err(invalid("a built-in profile cannot extend a file".into()));
            };
            let base = me.parent().unwrap_or(Path::new("/"));
            Origin::File(base.join(target))
        } else {
            let candidates = self.candidates(target);
            if candidates.is_empty() {
                return Err(invalid(self.not_found(target).to_string()));
            }
            // A user file extending its own name extends the built-in.
            match candidates.into_iter().find(|c| !chain.contains(c)) {
                Some(c) => c,
                None => self.candidates(target).remove(0),
            }
        };
        if chain.contains(&parent) || chain.len() >= MAX_DEPTH {
            let mut names: Vec<String> = chain.iter().map(origin_name).collect();
            names.push(origin_name(&parent));
            return Err(invalid(format!(
                "`extends = \"{target}\"` makes a cycle: {}; remove one of these `extends`",
                names.join(" extends ")
            )));
        }
        let base = self.resolve(&parent, chain)?;
        Ok(file::ProfileFile::merge(base, parsed))
    }
}

/// "dev (built-in)" or "dev (~/.config/hutch/profiles/dev.toml)".
fn origin_name(o: &Origin) -> String {
    match o {
        Origin::Builtin(n, _) => format!("{n} (built-in)"),
        Origin::File(p) => format!(
            "{} ({})",
            p.file_stem().unwrap_or_default().to_string_lossy(),
            display_path(p)
        ),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
