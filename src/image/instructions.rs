//! The Dockerfile instructions `hutch commit -c` applies to the new image's
//! config, as `podman commit --change` does: `CMD`, `ENTRYPOINT`, `ENV`,
//! `EXPOSE`, `LABEL`, `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`.
//!
//! Each is written `INSTRUCTION VALUE` (or `INSTRUCTION=VALUE`, which
//! Podman accepts too). `CMD`, `ENTRYPOINT` and `VOLUME` take a JSON array
//! or, for `CMD` and `ENTRYPOINT`, a shell command (run as
//! `/bin/sh -c COMMAND`); `ENV` and `LABEL` take `KEY=VALUE` pairs (values
//! may be quoted) or one `KEY VALUE`. As in a Dockerfile, `ENTRYPOINT`
//! clears the image's `CMD` unless a `CMD` came before it.
//!
//! Every instruction is parsed before anything is written, so a bad one
//! leaves the store as it was.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// The instructions `-c` takes, for messages.
pub const SUPPORTED: &str =
    "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR";

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    StopSignal(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
}

/// Parse one `-c` argument.
pub fn parse(text: &str) -> Result<Instruction> {
    parse_inner(text).with_context(|| format!("-c {text:?}"))
}

/// Parse every `-c` argument, failing on the first bad one.
pub fn parse_all(texts: &[String]) -> Result<Vec<Instruction>> {
    texts.iter().map(|t| parse(t)).collect()
}

fn parse_inner(text: &str) -> Result<Instruction> {
    let text = text.trim();
    let split = text
        .find(char::is_whitespace)
        .or_else(|| text.find('='))
        .with_context(|| format!("expected INSTRUCTION VALUE, one of {SUPPORTED}"))?;
    let (word, value) = text.split_at(split);
    let value = value[1..].trim();
    let word = word.to_ascii_uppercase();
    if value.is_empty() {
        bail!("{word} needs a value");
    }
    Ok(match word.as_str() {
        "CMD" => Instruction::Cmd(command(value)?),
        "ENTRYPOINT" => Instruction::Entrypoint(command(value)?),
        "ENV" => Instruction::Env(pairs(value)?),
        "LABEL" => Instruction::Label(pairs(value)?),
        "EXPOSE" => Instruction::Expose(
            words(value)?
                .iter()
                .map(|p| port(p))
                .collect::<Result<_>>()?,
        ),
        "STOPSIGNAL" => Instruction::StopSignal(single(&word, value)?),
        "USER" => Instruction::User(single(&word, value)?),
        "WORKDIR" => Instruction::Workdir(value.to_owned()),
        "VOLUME" => {
            let paths = if value.starts_with('[') {
                json_strings(value)?
            } else {
                words(value)?
            };
            for p in &paths {
                if !p.starts_with('/') {
                    bail!("VOLUME {p:?}: a volume is an absolute path");
                }
            }
            Instruction::Volume(paths)
        }
        other => bail!("unknown instruction {other}; hutch commit applies {SUPPORTED}"),
    })
}

/// A JSON array of strings (exec form) or a shell command.
fn command(value: &str) -> Result<Vec<String>> {
    if value.starts_with('[') {
        json_strings(value)
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), value.into()])
    }
}

fn json_strings(value: &str) -> Result<Vec<String>> {
    serde_json::from_str(value).with_context(|| {
        format!(
            "{value} is not a JSON array of strings (write [\"echo\", \"hi\"], with double quotes)"
        )
    })
}

fn single(word: &str, value: &str) -> Result<String> {
    let w = words(value)?;
    match w.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("{word} takes one value, not {value:?}"),
    }
}

/// `80`, `80/tcp`, `53/udp`, `9000/sctp` as an `ExposedPorts` key.
fn port(p: &str) -> Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let ok =
        num.parse::<u16>().is_ok_and(|n| n > 0) && ["tcp", "udp", "sctp"].contains(&proto.as_str());
    if !ok {
        bail!("EXPOSE {p:?}: expected PORT or PORT/tcp|udp|sctp, with a port from 1 to 65535");
    }
    Ok(format!("{num}/{proto}"))
}

/// `KEY=VALUE ...` (values may be quoted) or the old `KEY VALUE` form.
fn pairs(value: &str) -> Result<Vec<(String, String)>> {
    let first = value.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (key, rest) = value
            .split_once(char::is_whitespace)
            .with_context(|| format!("expected KEY=VALUE or KEY VALUE, not {value:?}"))?;
        return Ok(vec![(key.to_owned(), rest.trim().to_owned())]);
    }
    let mut out = Vec::new();
    for w in words(value)? {
        let (k, v) = w
            .split_once('=')
            .with_context(|| format!("{w:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            bail!("{w:?}: the key is empty");
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Split on whitespace, with shell-like quotes: `"a b"`, `'a b'`, `a\ b`.
fn words(value: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(e) => cur.push(e),
                            None => bail!("unterminated quote in {value:?}"),
                        },
                        Some(x) => cur.push(x),
                        None => bail!("unterminated quote in {value:?}"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => cur.push('\\'),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Apply `list` in order to the `config` object of an image config (the
/// one holding `Cmd`, `Env`, ...).
pub fn apply(config: &mut Map<String, Value>, list: &[Instruction]) {
    let mut cmd_set = false;
    for i in list {
        match i {
            Instruction::Cmd(c) => {
                config.insert("Cmd".into(), json!(c));
                cmd_set = true;
            }
            Instruction::Entrypoint(e) => {
                config.insert("Entrypoint".into(), json!(e));
                if !cmd_set {
                    config.remove("Cmd");
                }
            }
            Instruction::Env(kv) => {
                let mut env: Vec<String> = strings(config.get("Env"));
                for (k, v) in kv {
                    let prefix = format!("{k}=");
                    env.retain(|e| !e.starts_with(&prefix) && e != k);
                    env.push(format!("{k}={v}"));
                }
                config.insert("Env".into(), json!(env));
            }
            Instruction::Label(kv) => {
                let labels = object(config, "Labels");
                for (k, v) in kv {
                    labels.insert(k.clone(), json!(v));
                }
            }
            Instruction::Expose(ports) => {
                let exposed = object(config, "ExposedPorts");
                for p in ports {
                    exposed.insert(p.clone(), json!({}));
                }
            }
            Instruction::Volume(paths) => {
                let vols = object(config, "Volumes");
                for p in paths {
                    vols.insert(p.clone(), json!({}));
                }
            }
            Instruction::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(s));
            }
            Instruction::User(u) => {
                config.insert("User".into(), json!(u));
            }
            Instruction::Workdir(w) => {
                let dir = if w.starts_with('/') {
                    w.clone()
                } else {
                    let base = config
                        .get("WorkingDir")
                        .and_then(Value::as_str)
                        .filter(|b| !b.is_empty())
                        .unwrap_or("/");
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                config.insert("WorkingDir".into(), json!(dir));
            }
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The object `config[key]`, made if absent (or null).
fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("made an object just above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(base: Value, changes: &[&str]) -> Value {
        let list: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        let parsed = parse_all(&list).unwrap();
        let mut cfg = base.as_object().unwrap().clone();
        apply(&mut cfg, &parsed);
        Value::Object(cfg)
    }

    #[test]
    fn instructions_change_the_config_like_podman() {
        let base = json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "A=0"], "WorkingDir": "/srv"});
        let got = applied(
            base.clone(),
            &[
                r#"CMD ["echo","hi"]"#,
                "ENV A=1 B=\"two words\"",
                "env C 3 4",
                "WORKDIR app",
                "USER 1000:1000",
                "EXPOSE 80 53/udp",
                "LABEL version=2 'org.x'=y",
                "STOPSIGNAL=SIGINT",
                "VOLUME /data",
            ],
        );
        assert_eq!(got["Cmd"], json!(["echo", "hi"]));
        assert_eq!(
            got["Env"],
            json!(["PATH=/bin", "A=1", "B=two words", "C=3 4"])
        );
        assert_eq!(got["WorkingDir"], json!("/srv/app"));
        assert_eq!(got["User"], json!("1000:1000"));
        assert_eq!(got["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(got["Labels"], json!({"version": "2", "org.x": "y"}));
        assert_eq!(got["StopSignal"], json!("SIGINT"));
        assert_eq!(got["Volumes"], json!({"/data": {}}));

        // Shell form; ENTRYPOINT clears an inherited CMD, not one set before it.
        let got = applied(base.clone(), &["ENTRYPOINT /app --serve"]);
        assert_eq!(got["Entrypoint"], json!(["/bin/sh", "-c", "/app --serve"]));
        assert!(got.get("Cmd").is_none(), "{got}");
        let got = applied(base, &[r#"CMD ["x"]"#, r#"ENTRYPOINT ["/app"]"#]);
        assert_eq!(got["Cmd"], json!(["x"]));
    }

    #[test]
    fn bad_instructions_say_what_is_wrong() {
        for (bad, says) in [
            ("FROM busybox", "unknown instruction FROM"),
            ("RUN echo", "unknown instruction RUN"),
            ("CMD", "expected INSTRUCTION VALUE"),
            ("CMD ", "expected INSTRUCTION VALUE"),
            (r#"CMD ["echo", 'hi']"#, "not a JSON array of strings"),
            ("EXPOSE 99999", "from 1 to 65535"),
            ("EXPOSE 80/quic", "PORT/tcp|udp|sctp"),
            ("ENV A=\"open", "unterminated quote"),
            ("ENV =1", "the key is empty"),
            ("USER a b", "takes one value"),
            ("VOLUME data", "absolute path"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(e.starts_with("-c "), "{bad:?}: {e}");
        }
    }
}
