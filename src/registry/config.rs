//! Per-registry settings in `~/.config/hutch/registries.toml`, written the
//! way Podman's `registries.conf` writes them, so an entry can be copied
//! from one to the other:
//!
//! ```toml
//! [[registry]]
//! location = "localhost:5000"   # a registry, or REGISTRY/REPOSITORY-PREFIX
//! insecure = true               # self-signed TLS or plain HTTP allowed
//! ```
//!
//! `--tls-verify` on the command line wins over the file.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    registry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// The settings file, if a config directory exists.
pub fn path() -> Option<PathBuf> {
    Some(crate::profile::config_dir()?.join("registries.toml"))
}

/// Whether to verify TLS for `registry`/`repository`: `explicit` (the
/// command line's `--tls-verify`) when given, else the longest matching
/// `location` of the settings file, else yes.
pub fn tls_verify(registry: &str, repository: &str, explicit: Option<bool>) -> Result<bool> {
    if let Some(v) = explicit {
        return Ok(v);
    }
    let Some(file) = path() else {
        return Ok(true);
    };
    Ok(!insecure_in(&file, registry, repository)?)
}

fn insecure_in(file: &Path, registry: &str, repository: &str) -> Result<bool> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let parsed: File = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}; expected [[registry]] tables with `location` and `insecure` \
             (fix or remove the file)",
            file.display(),
            e.to_string().trim_end()
        )
    })?;
    let full = format!("{registry}/{repository}");
    let mut best: Option<&Entry> = None;
    for e in &parsed.registry {
        let loc = e.location.trim_end_matches('/');
        if loc.is_empty() {
            bail!("{}: a [[registry]] has an empty location", file.display());
        }
        let matches = loc == registry || full == loc || full.starts_with(&format!("{loc}/"));
        if matches && best.is_none_or(|b| b.location.len() < e.location.len()) {
            best = Some(e);
        }
    }
    Ok(best.is_some_and(|e| e.insecure))
}

#[cfg(test)]
mod tests {
    use super::insecure_in;

    fn check(text: &str, registry: &str, repo: &str) -> anyhow::Result<bool> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("registries.toml");
        std::fs::write(&f, text).unwrap();
        insecure_in(&f, registry, repo)
    }

    #[test]
    fn locations_match_registries_and_repository_prefixes() {
        let conf = r#"
[[registry]]
location = "localhost:5000"
insecure = true

[[registry]]
location = "example.com/team"
insecure = true

[[registry]]
location = "example.com/team/secure"
insecure = false
"#;
        assert!(check(conf, "localhost:5000", "a/b").unwrap());
        assert!(!check(conf, "localhost:5001", "a/b").unwrap());
        assert!(check(conf, "example.com", "team/app").unwrap());
        assert!(!check(conf, "example.com", "teamwork/app").unwrap());
        assert!(!check(conf, "example.com", "team/secure/app").unwrap());
        assert!(!check(conf, "docker.io", "library/debian").unwrap());
    }

    #[test]
    fn missing_file_is_secure_and_broken_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!insecure_in(&dir.path().join("none.toml"), "r", "x").unwrap());
        let err = check("[[registry]]\nlocation = 5\n", "r", "x").unwrap_err();
        assert!(err.to_string().contains("registries.toml"), "{err}");
        let err = check("[[registry]]\nlocation = \"r\"\ninsecur = true\n", "r", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("insecur"), "{err}");
        let err = check("[[registry]]\nlocation = \"\"\n", "r", "x").unwrap_err();
        assert!(err.to_string().contains("empty location"), "{err}");
    }
}
