//! Registry credentials in Podman's `auth.json` format
//! (`{"auths": {"REGISTRY": {"auth": base64("user:password")}}}`), which
//! Docker's `~/.docker/config.json` shares.
//!
//! Read, first hit wins: `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json` (Podman's default),
//! `~/.config/containers/auth.json`, `~/.docker/config.json`. Written: the
//! first of those that is set (`$REGISTRY_AUTH_FILE`, else the runtime
//! one, else the config one), mode 0600, replaced atomically. Passwords are
//! never printed or logged.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.username)
    }
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The files read, in order.
fn read_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(r).join("containers/auth.json"));
    }
    if let Some(h) = home() {
        out.push(h.join(".config/containers/auth.json"));
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// The file `login` writes.
pub fn write_path() -> Result<PathBuf> {
    read_paths().into_iter().next().context(
        "neither REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR nor HOME is set: nowhere to keep credentials",
    )
}

/// The keys a registry may be stored under (Docker keeps Docker Hub as a URL).
fn keys(registry: &str) -> Vec<String> {
    let mut k = vec![registry.to_owned(), format!("https://{registry}")];
    if registry == "docker.io" {
        k.push("https://index.docker.io/v1/".into());
        k.push("index.docker.io".into());
    }
    k
}

fn decode(entry: &Value) -> Option<Credentials> {
    let auth = entry.get("auth")?.as_str()?;
    let raw = STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.to_owned(),
        password: p.to_owned(),
    })
}

fn read(path: &PathBuf) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The credentials stored for `registry`, if any.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    for path in read_paths() {
        let Some(doc) = read(&path)? else { continue };
        for k in keys(registry) {
            if let Some(c) = doc.get("auths").and_then(|a| a.get(&k)).and_then(decode) {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

fn write(path: &PathBuf, doc: &Value) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .context("the credentials file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".auth.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(doc)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Store `creds` for `registry` in [`write_path`]; returns the file.
pub fn save(registry: &str, creds: &Credentials) -> Result<PathBuf> {
    let path = write_path()?;
    let mut doc = read(&path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let Some(obj) = doc.as_object_mut() else {
        bail!("{} is not a JSON object", path.display());
    };
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", path.display());
    };
    let encoded = STANDARD.encode(format!("{}:{}", creds.username, creds.password));
    auths.insert(registry.to_owned(), serde_json::json!({ "auth": encoded }));
    write(&path, &doc)?;
    Ok(path)
}

/// Remove `registry` from [`write_path`]; false when it was not there.
pub fn remove(registry: &str) -> Result<bool> {
    let path = write_path()?;
    let Some(mut doc) = read(&path)? else {
        return Ok(false);
    };
    let removed = doc
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .map(|a| keys(registry).iter().any(|k| a.remove(k).is_some()))
        .unwrap_or(false);
    if removed {
        write(&path, &doc)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_and_debug_hides_the_password() {
        let e = serde_json::json!({ "auth": STANDARD.encode("alice:pa:ss") });
        let c = decode(&e).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "pa:ss")
        );
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert_eq!(
            c.basic_header(),
            format!("Basic {}", STANDARD.encode("alice:pa:ss"))
        );
        assert!(decode(&serde_json::json!({ "auth": "%%%" })).is_none());
        assert!(decode(&serde_json::json!({})).is_none());
    }

    #[test]
    fn docker_hub_has_several_spellings() {
        assert!(keys("docker.io").contains(&"https://index.docker.io/v1/".to_owned()));
        assert_eq!(keys("127.0.0.1:5000")[0], "127.0.0.1:5000");
    }
}
