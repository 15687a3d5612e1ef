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

mod catalog;
mod file;
pub mod locks;
mod policy;
#[cfg(test)]
mod tests;
pub mod values;

// The TOML reading machinery, for the other hand-written files (hutch.toml).
pub use catalog::{config_dir, display_path, display_source, list, load, user_dir};
pub(crate) use file::{EnvName, checked_string, key_line, line_of, parse_toml};
pub use policy::{
    CapabilityPolicy, DEFAULT_LOG_SIZE_MAX, FilesystemPolicy, Limits, NetworkMode, NetworkPolicy,
    Profile, SeccompMode, SecurityPolicy, UserPolicy,
};
pub use values::{
    MountSpec, RunMount, TmpfsSpec, VolumeMount, expand, parse_mount, parse_mount_flag,
    parse_tmpfs, parse_volume_flag,
};

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
