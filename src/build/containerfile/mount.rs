//! `RUN --mount=` specifications, read into a small struct. What a mount
//! means (where a cache lives, which secret is which) is the executor's.

use super::ParseError;

/// The kind of a `--mount`; `bind` when no `type=` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// One `--mount=type=...,target=...` as written. Values are kept as
/// strings; `readonly` gathers `ro`, `readonly`, `rw=false`, `readwrite=false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub readonly: Option<bool>,
    pub sharing: Option<String>,
    pub mode: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub size: Option<String>,
    pub env: Option<String>,
    pub required: Option<bool>,
}

/// Parses the value of one `--mount=` flag.
pub fn parse(spec: &str, line: usize) -> Result<Mount, ParseError> {
    let bad = |what: String| ParseError::new(line, format!("RUN --mount={spec}: {what}"));
    let mut mount = Mount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        readonly: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
        required: None,
    };
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let flag = |value: &Option<String>| -> Result<bool, ParseError> {
            match value.as_deref() {
                None | Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(bad(format!("{key}={other} must be true or false"))),
            }
        };
        let need = |value: Option<String>| -> Result<String, ParseError> {
            value.ok_or_else(|| bad(format!("{key} needs a value ({key}=...)")))
        };
        match key.as_str() {
            "type" => {
                mount.kind = match need(value)?.as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    other => {
                        return Err(bad(format!(
                            "type={other} is not known; use bind, cache, tmpfs, secret or ssh"
                        )));
                    }
                }
            }
            "target" | "dst" | "destination" => mount.target = Some(need(value)?),
            "source" | "src" => mount.source = Some(need(value)?),
            "from" => mount.from = Some(need(value)?),
            "id" => mount.id = Some(need(value)?),
            "ro" | "readonly" => mount.readonly = Some(flag(&value)?),
            "rw" | "readwrite" => mount.readonly = Some(!flag(&value)?),
            "sharing" => mount.sharing = Some(need(value)?),
            "mode" => mount.mode = Some(need(value)?),
            "uid" => mount.uid = Some(need(value)?),
            "gid" => mount.gid = Some(need(value)?),
            "size" => mount.size = Some(need(value)?),
            "env" => mount.env = Some(need(value)?),
            "required" => mount.required = Some(flag(&value)?),
            _ => return Err(bad(format!("option `{key}` is not known"))),
        }
    }
    if mount.target.is_none() && !matches!(mount.kind, MountKind::Secret | MountKind::Ssh) {
        return Err(bad("needs target=PATH".to_string()));
    }
    Ok(mount)
}
