//! Finding profiles: the built-ins and the user's directory, loading one
//! by name or path with its `extends` chain, listing them all, and how
//! their sources are shown to people.

use super::{BUILTIN_SOURCE, BUILTINS, Profile, ProfileError, file, values};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Longest `extends` chain followed (a guard; real cycles are reported).
const MAX_DEPTH: usize = 32;

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
