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
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &str)]) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
        }
        let c = Catalog::new(Some(dir.path().to_owned()));
        (dir, c)
    }

    #[test]
    fn every_builtin_parses_and_documents_itself() {
        let c = Catalog::new(None);
        for (name, text) in BUILTINS {
            let p = c.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, *name);
            assert_eq!(p.source, "built-in");
            assert!(!p.description.is_empty(), "{name} has no description");
            assert!(
                text.lines()
                    .filter(|l| l.trim_start().starts_with('#'))
                    .count()
                    > 3
            );
            // show's output loads back to the same profile.
            let shown = p.to_toml().unwrap();
            let back = file::parse(&shown, "shown")
                .unwrap()
                .resolve(name, "built-in");
            assert_eq!(back, p, "{name}:\n{shown}");
        }
    }

    #[test]
    fn default_toml_documents_every_key() {
        let text = BUILTINS[0].1;
        let keys = [
            "description",
            "extends",
            "locked",
            "[filesystem]",
            "read_only",
            "mounts",
            "tmpfs",
            "workdir",
            "home",
            "[user]",
            "keep_id",
            "[network]",
            "mode",
            "allow_host_loopback",
            "mtu",
            "block_private",
            "[security]",
            "seccomp",
            "capabilities",
            "landlock",
            "landlock_read",
            "landlock_write",
            "hostname",
            "share_terminal",
            "[limits]",
            "nofile",
            "nproc",
            "core",
            "memory",
            "pids",
            "cpus",
            "[env]",
        ];
        for k in keys {
            assert!(text.contains(k), "default.toml does not mention {k}");
        }
    }

    #[test]
    fn builtin_values() {
        let c = Catalog::new(None);
        let d = c.load(DEFAULT_PROFILE).unwrap();
        assert_eq!(d.network.mode, NetworkMode::Slirp);
        assert!(!d.network.allow_host_loopback);
        assert!(!d.network.block_private);
        assert_eq!(d.security.seccomp, SeccompMode::Default);
        assert_eq!(d.security.capabilities, CapabilityPolicy::Default);
        assert!(!d.filesystem.read_only && !d.user.keep_id && !d.security.landlock);
        assert_eq!(d.limits, Limits::default());

        let dev = c.load("dev").unwrap();
        assert_eq!(dev.filesystem.mounts, ["${CWD}:${CWD}"]);
        assert_eq!(dev.filesystem.workdir, "${CWD}");
        assert!(dev.user.keep_id && !dev.filesystem.home);

        let u = c.load("untrusted").unwrap();
        assert!(u.filesystem.read_only && !u.filesystem.home);
        assert_eq!(u.filesystem.tmpfs, ["/tmp"]);
        assert_eq!(u.security.seccomp, SeccompMode::Strict);
        assert_eq!(u.security.capabilities, CapabilityPolicy::None);
        assert!(u.security.landlock);
        assert_eq!(u.security.landlock_read, ["/"]);
        for p in ["/tmp", "${CWD}", "/dev/null", "/dev/pts"] {
            assert!(u.security.landlock_write.iter().any(|w| w == p), "{p}");
        }
        assert_eq!(u.network.mode, NetworkMode::None);
        let i = c.load("install").unwrap();
        assert_eq!(i.network.mode, NetworkMode::Slirp);
        assert!(!i.network.allow_host_loopback);
        assert!(i.network.block_private);
        assert_eq!(
            (i.filesystem.clone(), i.security.clone(), i.limits.clone()),
            (u.filesystem.clone(), u.security.clone(), u.limits.clone())
        );
        assert_eq!(
            u.limits,
            Limits {
                nofile: Some(1024),
                nproc: Some(512),
                core: Some(0),
                memory: Some(2 << 30),
                pids: Some(512),
                cpus: None
            }
        );
    }

    #[test]
    fn extends_chain_user_over_builtin() {
        let (_d, c) = catalog(&[
            ("mine", "extends = \"dev\"\n[network]\nmode = \"host\"\n"),
            (
                "leaf",
                "extends = \"mine\"\ndescription = \"leaf\"\n[filesystem]\nhome = true\n",
            ),
        ]);
        let p = c.load("leaf").unwrap();
        assert_eq!(p.description, "leaf");
        assert_eq!(p.network.mode, NetworkMode::Host); // from mine
        assert!(p.user.keep_id); // from dev
        assert!(p.filesystem.home); // own
        assert_eq!(p.filesystem.mounts, ["${CWD}:${CWD}"]); // dev's, not replaced
        assert!(p.source.ends_with("leaf.toml"));
    }

    #[test]
    fn user_file_overrides_builtin_and_can_extend_it() {
        let (_d, c) = catalog(&[(
            "dev",
            "extends = \"dev\"\ndescription = \"my dev\"\n[filesystem]\nhome = true\n",
        )]);
        let p = c.load("dev").unwrap();
        assert_eq!(p.description, "my dev");
        assert!(p.filesystem.home && p.user.keep_id);
        assert!(p.source.ends_with("dev.toml"));
        // and a built-in that extends `default` sees a user `default`:
        let (_d, c) = catalog(&[("default", "[security]\nhostname = \"box\"\n")]);
        assert_eq!(c.load("dev").unwrap().security.hostname, "box");
        assert_eq!(c.load("untrusted").unwrap().security.hostname, "box");
    }

    #[test]
    fn cycles_are_errors() {
        let (_d, c) = catalog(&[
            ("a", "description = \"a\"\nextends = \"b\"\n"),
            ("b", "\n\nextends = \"a\"\n"),
            ("self", "extends = \"self\"\n"),
        ]);
        let e = c.load("a").unwrap_err().to_string();
        assert!(
            e.contains("b.toml, line 3, key `extends`: `extends = \"a\"` makes a cycle: a ("),
            "{e}"
        );
        assert!(e.contains("extends b (") && e.contains("remove one"), "{e}");
        let e = c.load("self").unwrap_err().to_string();
        assert!(
            e.contains("line 1, key `extends`") && e.contains("cycle"),
            "{e}"
        );
    }

    #[test]
    fn locks_follow_extends_chains() {
        let c = Catalog::new(None);
        assert!(c.load("default").unwrap().locked.is_empty());
        assert!(c.load("dev").unwrap().locked.is_empty());
        let all = ["filesystem", "user", "network", "security"];
        assert_eq!(c.load("untrusted").unwrap().locked, all);
        assert_eq!(c.load("install").unwrap().locked, all);
        let (_d, c) = catalog(&[
            // Inherits untrusted's locks and changes a locked key in its file.
            (
                "web",
                "extends = \"untrusted\"\n[network]\nmode = \"slirp\"\n",
            ),
            // Replaces them.
            (
                "open",
                "extends = \"web\"\nlocked = [\"security\", \"network.allow_host_loopback\", \"security\"]\n",
            ),
            // Inherits the replaced list through one more link.
            ("leaf", "extends = \"open\"\ndescription = \"leaf\"\n"),
            ("none", "extends = \"untrusted\"\nlocked = []\n"),
        ]);
        let web = c.load("web").unwrap();
        assert_eq!(web.locked, all);
        assert_eq!(web.network.mode, NetworkMode::Slirp);
        let open = c.load("open").unwrap();
        assert_eq!(open.locked, ["security", "network.allow_host_loopback"]);
        assert_eq!(
            locks::locked_keys(&open.locked),
            [
                "network.allow_host_loopback",
                "security.seccomp",
                "security.capabilities",
                "security.landlock"
            ]
        );
        assert_eq!(c.load("leaf").unwrap().locked, open.locked);
        assert!(c.load("none").unwrap().locked.is_empty());
        // show's output keeps the locks.
        let shown = open.to_toml().unwrap();
        assert!(
            shown.contains("locked = [\"security\", \"network.allow_host_loopback\"]"),
            "{shown}"
        );
    }

    #[test]
    fn bad_locks_name_file_line_and_key() {
        let (_d, c) = catalog(&[
            ("child", "extends = \"parent\"\n"),
            ("parent", "# locks\n\nlocked = [\"network\", \"netwrk\"]\n"),
            ("limits", "locked = [\"limits.memory\"]\n"),
            ("notalist", "locked = \"network\"\n"),
            (
                "late",
                "[network]\nmode = \"none\"\nlocked = [\"network\"]\n",
            ),
        ]);
        let e = c.load("child").unwrap_err().to_string();
        assert!(
            e.contains("parent.toml, line 3, key `locked`: `netwrk` cannot be locked"),
            "{e}"
        );
        assert!(
            e.contains("network.allow_host_loopback"),
            "lists what can be: {e}"
        );
        let e = c.load("limits").unwrap_err().to_string();
        assert!(
            e.contains("line 1, key `locked`: `limits.memory` cannot be locked (no flag"),
            "{e}"
        );
        let e = c.load("notalist").unwrap_err().to_string();
        assert!(
            e.contains("line 1, key `locked`") && e.contains("expected an array"),
            "{e}"
        );
        // Written below a table, `locked` is a key of that table.
        let e = c.load("late").unwrap_err().to_string();
        assert!(
            e.contains("line 3: unknown key `locked` in [network]"),
            "{e}"
        );
    }

    #[test]
    fn missing_profiles() {
        let (_d, c) = catalog(&[("x", "# a comment\nextends = \"nosuch\"\n")]);
        let e = c.load("x").unwrap_err().to_string();
        assert!(
            e.contains("x.toml, line 2, key `extends`: no profile named `nosuch`"),
            "{e}"
        );
        let e = c.load("nosuch").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "no profile named `nosuch`: the built-in profiles are default, dev, install, untrusted"
            ),
            "{e}"
        );
        let e = c.load("../etc").unwrap_err().to_string();
        assert!(e.contains("cannot read profile"), "{e}");
        let e = c.load("a b").unwrap_err().to_string();
        assert!(e.contains("invalid profile name"), "{e}");
    }

    #[test]
    fn load_by_path_and_relative_extends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "[user]\nkeep_id = true\n").unwrap();
        let p = dir.path().join("top.toml");
        std::fs::write(&p, "extends = \"./base.toml\"\n[env]\nX = \"1\"\n").unwrap();
        let prof = Catalog::new(None).load(p.to_str().unwrap()).unwrap();
        assert_eq!(prof.name, "top");
        assert!(prof.user.keep_id);
        assert_eq!(prof.source, p.display().to_string());
    }

    #[test]
    fn errors_in_parents_name_the_parent() {
        let (_d, c) = catalog(&[
            ("child", "extends = \"parent\"\n"),
            ("parent", "[limits]\nmemory = \"12Q\"\n"),
        ]);
        let e = c.load("child").unwrap_err().to_string();
        assert!(
            e.contains("parent.toml, line 2, key `limits.memory`: invalid size \"12Q\""),
            "{e}"
        );
    }

    #[test]
    fn listing() {
        let (_d, c) = catalog(&[
            ("dev", "extends = \"dev\"\ndescription = \"mine\"\n"),
            ("zz", "description = \"last\"\n"),
            ("broken", "[network]\nmode = \"x\"\n"),
        ]);
        std::fs::write(_d.path().join("notes.txt"), "").unwrap();
        let l = c.list().unwrap();
        let names: Vec<_> = l.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["broken", "default", "dev", "install", "untrusted", "zz"]
        );
        let dev = &l[2];
        assert!(
            dev.overrides_builtin && dev.source.ends_with("dev.toml") && dev.description == "mine"
        );
        assert!(!l[1].overrides_builtin && l[1].source == "built-in");
        assert!(!l[5].overrides_builtin);
        assert!(
            l[0].error
                .as_ref()
                .unwrap()
                .contains("line 2, key `network.mode`")
        );
        // No user directory at all is fine.
        assert_eq!(
            Catalog::new(Some("/nonexistent/x".into()))
                .list()
                .unwrap()
                .len(),
            BUILTINS.len()
        );
    }

    #[test]
    fn mount_specs_expand() {
        let c = Catalog::new(None);
        let dev = c.load("dev").unwrap();
        let m = dev.mount_specs(Path::new("/w:1"), Path::new("/h")).unwrap();
        assert_eq!(
            m,
            [MountSpec {
                host: "/w:1".into(),
                container: "/w:1".into(),
                read_only: false
            }]
        );
        let mut p = dev.clone();
        p.filesystem.mounts = vec!["${HOME}/x:/x".into()];
        assert!(
            p.mount_specs(Path::new("/w"), Path::new("rel"))
                .unwrap_err()
                .to_string()
                .contains("not absolute")
        );
        assert_eq!(
            c.load("untrusted").unwrap().tmpfs_specs().unwrap()[0].path,
            "/tmp"
        );
        assert_eq!(expand("${CWD}/a", Path::new("/w"), Path::new("/h")), "/w/a");
    }

    #[test]
    fn json_round_trip() {
        let p = Catalog::new(None).load("untrusted").unwrap();
        let j = serde_json::to_string(&p).unwrap();
        assert!(
            j.contains("\"capabilities\":\"none\"") && j.contains("\"mode\":\"none\""),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Profile>(&j).unwrap(), p);
        let caps: CapabilityPolicy = serde_json::from_str("[\"chown\",\"CAP_CHOWN\"]").unwrap();
        assert_eq!(caps, CapabilityPolicy::List(vec!["CAP_CHOWN".into()]));
    }
}
