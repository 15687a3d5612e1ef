//! The instructions that change only the image config: ENV, LABEL,
//! EXPOSE, VOLUME, USER, WORKDIR, CMD, ENTRYPOINT, SHELL, STOPSIGNAL,
//! HEALTHCHECK, ONBUILD and MAINTAINER, applied as Docker does, with the
//! stage's variables substituted where Docker substitutes them.
//!
//! Each gives the text the history and the cache key record: the
//! instruction after substitution, values quoted where they need it, so
//! two different instructions never give the same text.

use super::containerfile::instruction::{Command, Healthcheck, Instruction, KeyValue};
use super::containerfile::substitute::{Vars, expand_word, expand_words};
use super::image_state::ImageState;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The variables a step sees: the stage's ARGs, with ENV taking
/// precedence (Docker's rule).
pub(crate) struct Scope<'a> {
    pub(crate) args: &'a BTreeMap<String, String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) escape: char,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(
        args: &'a BTreeMap<String, String>,
        state: &ImageState,
        escape: char,
    ) -> Scope<'a> {
        let env = state
            .env()
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        Scope { args, env, escape }
    }

    /// One word expanded; the variables it used are added to `used`.
    pub(crate) fn word(&self, w: &str, used: &mut BTreeSet<String>) -> Result<String, String> {
        let e = expand_word(w, self.escape, self).map_err(|e| e.0)?;
        used.extend(e.used);
        Ok(e.value)
    }

    /// Words split at unquoted whitespace.
    pub(crate) fn words(
        &self,
        text: &str,
        used: &mut BTreeSet<String>,
    ) -> Result<Vec<String>, String> {
        let e = expand_words(text, self.escape, self).map_err(|e| e.0)?;
        used.extend(e.used);
        Ok(e.value)
    }
}

impl Scope<'_> {
    /// A here-document's body with `$VAR` and `${...}` expanded and the
    /// rest kept as written (quotes too); the escape character before `$`
    /// keeps a literal `$`.
    pub(crate) fn heredoc(
        &self,
        body: &str,
        used: &mut BTreeSet<String>,
    ) -> Result<String, String> {
        let chars: Vec<char> = body.chars().collect();
        let mut out = String::with_capacity(body.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if c == self.escape && next == Some('$') {
                out.push('$');
                i += 2;
            } else if c == '$' && next == Some('{') {
                let mut depth = 0;
                let mut end = None;
                for (j, ch) in chars.iter().enumerate().skip(i + 1) {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return Err("a `${` without its `}` in a here-document".into());
                };
                let fragment: String = chars[i..=end].iter().collect();
                out.push_str(&self.word(&fragment, used)?);
                i = end + 1;
            } else if c == '$' && next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') {
                let mut end = i + 1;
                while chars
                    .get(end)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
                {
                    end += 1;
                }
                let fragment: String = chars[i..end].iter().collect();
                out.push_str(&self.word(&fragment, used)?);
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        }
        Ok(out)
    }
}

impl Vars for Scope<'_> {
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .or_else(|| self.args.get(name))
            .map(String::as_str)
    }
}

/// What applying an instruction recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The instruction after substitution (history `created_by`, cache key).
    pub(crate) text: String,
    /// The variables it used.
    pub(crate) used: BTreeSet<String>,
}

/// `value` as written in an instruction: bare when it needs no quotes.
pub(crate) fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$' | '`' | '='))
    {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    }
}

/// A command as the config stores it: exec form as is, shell form through
/// the stage's SHELL.
fn command(state: &ImageState, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(text) => {
            let mut v = state.shell();
            v.push(text.clone());
            v
        }
    }
}

fn command_text(c: &Command) -> String {
    match c {
        Command::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
        Command::Shell(text) => text.clone(),
    }
}

/// Apply a config-only instruction. ARG, FROM, RUN, COPY and ADD are the
/// executor's.
pub(crate) fn apply(
    state: &mut ImageState,
    instruction: &Instruction,
    scope: &Scope,
) -> Result<Applied, String> {
    let mut used = BTreeSet::new();
    let text = match instruction {
        Instruction::Env(pairs) => {
            let mut parts = Vec::new();
            // Each pair sees the ones before it only from the next ENV on
            // (Docker expands a whole ENV line against the old values).
            let mut set = Vec::new();
            for KeyValue { key, value } in pairs {
                let v = scope.word(value, &mut used)?;
                parts.push(format!("{key}={}", quote(&v)));
                set.push((key.clone(), v));
            }
            for (k, v) in set {
                state.set_env(&k, &v);
            }
            format!("ENV {}", parts.join(" "))
        }
        Instruction::Label(pairs) => {
            let mut parts = Vec::new();
            for KeyValue { key, value } in pairs {
                let k = scope.word(key, &mut used)?;
                let v = scope.word(value, &mut used)?;
                parts.push(format!("{}={}", quote(&k), quote(&v)));
                set_label(state, &k, &v);
            }
            format!("LABEL {}", parts.join(" "))
        }
        Instruction::Maintainer(name) => {
            set_label(state, "maintainer", name);
            if let Some(obj) = state.config.as_object_mut() {
                obj.insert("author".into(), json!(name));
            }
            format!("MAINTAINER {}", quote(name))
        }
        Instruction::Expose(words) => {
            let mut ports = Vec::new();
            for w in words {
                for p in scope.words(w, &mut used)? {
                    ports.push(port(&p)?);
                }
            }
            let c = state.container();
            let map = c.entry("ExposedPorts").or_insert_with(|| json!({}));
            if !map.is_object() {
                *map = json!({});
            }
            for p in &ports {
                map[p.as_str()] = json!({});
            }
            format!("EXPOSE {}", ports.join(" "))
        }
        Instruction::Volume(words) => {
            let mut paths = Vec::new();
            for w in words {
                let p = scope.word(w, &mut used)?;
                if p.is_empty() {
                    return Err("VOLUME: an empty path".into());
                }
                paths.push(p);
            }
            let c = state.container();
            let map = c.entry("Volumes").or_insert_with(|| json!({}));
            if !map.is_object() {
                *map = json!({});
            }
            for p in &paths {
                map[p.as_str()] = json!({});
            }
            format!(
                "VOLUME {}",
                serde_json::to_string(&paths).unwrap_or_default()
            )
        }
        Instruction::User(u) => {
            let u = scope.word(u, &mut used)?;
            if u.is_empty() {
                return Err("USER needs a user name or id".into());
            }
            state.container().insert("User".into(), json!(u));
            format!("USER {}", quote(&u))
        }
        Instruction::Workdir(w) => {
            let w = scope.word(w, &mut used)?;
            if w.is_empty() {
                return Err("WORKDIR needs a path".into());
            }
            let dir = workdir(state.field("WorkingDir"), &w);
            state.container().insert("WorkingDir".into(), json!(dir));
            format!("WORKDIR {}", quote(&dir))
        }
        Instruction::StopSignal(s) => {
            let s = scope.word(s, &mut used)?;
            state.container().insert("StopSignal".into(), json!(s));
            format!("STOPSIGNAL {}", quote(&s))
        }
        Instruction::Cmd(c) => {
            let v = command(state, c);
            state.container().insert("Cmd".into(), json!(v));
            state.cmd_set = true;
            format!("CMD {}", command_text(c))
        }
        Instruction::Entrypoint(c) => {
            let v = command(state, c);
            let cmd_set = state.cmd_set;
            let container = state.container();
            container.insert("Entrypoint".into(), json!(v));
            if !cmd_set {
                container.insert("Cmd".into(), Value::Null);
            }
            format!("ENTRYPOINT {}", command_text(c))
        }
        Instruction::Shell(v) => {
            if v.is_empty() {
                return Err("SHELL needs a JSON array with the shell and its flags".into());
            }
            state.container().insert("Shell".into(), json!(v));
            format!("SHELL {}", serde_json::to_string(v).unwrap_or_default())
        }
        Instruction::Healthcheck(h) => {
            let value = healthcheck(h)?;
            state.container().insert("Healthcheck".into(), value);
            match h {
                Healthcheck::None => "HEALTHCHECK NONE".into(),
                Healthcheck::Check { command: c, .. } => {
                    format!("HEALTHCHECK CMD {}", command_text(c))
                }
            }
        }
        Instruction::Onbuild(o) => {
            let c = state.container();
            let list = c.entry("OnBuild").or_insert_with(|| json!([]));
            match list.as_array_mut() {
                Some(l) => l.push(json!(o.text)),
                None => *list = json!([o.text]),
            }
            format!("ONBUILD {}", o.text)
        }
        other => {
            return Err(format!(
                "internal error: {} is not a config instruction",
                other.keyword()
            ));
        }
    };
    Ok(Applied { text, used })
}

fn set_label(state: &mut ImageState, key: &str, value: &str) {
    let c = state.container();
    let labels = c.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[key] = json!(value);
}

/// `80`, `80/tcp`, `53/udp`, `8000-8010/tcp` as `PORT/PROTO`.
fn port(p: &str) -> Result<String, String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("EXPOSE {p}: the protocol is tcp, udp or sctp"));
    }
    let ok = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
    let valid = match num.split_once('-') {
        Some((a, b)) => ok(a) && ok(b),
        None => ok(num),
    };
    if !valid {
        return Err(format!("EXPOSE {p}: not a port number (1-65535)"));
    }
    Ok(format!("{num}/{proto}"))
}

/// A WORKDIR relative to the one before.
pub(crate) fn workdir(current: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_string()
    } else {
        let base = if current.is_empty() { "/" } else { current };
        format!("{}/{w}", base.trim_end_matches('/'))
    };
    // Clean `.`, `..` and repeated slashes, as filepath.Clean does.
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn healthcheck(h: &Healthcheck) -> Result<Value, String> {
    match h {
        Healthcheck::None => Ok(json!({"Test": ["NONE"]})),
        Healthcheck::Check {
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
            command: c,
        } => {
            let test = match c {
                Command::Exec(v) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(v.iter().cloned());
                    t
                }
                Command::Shell(text) => vec!["CMD-SHELL".into(), text.clone()],
            };
            let mut v = json!({ "Test": test });
            for (key, d) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start_period),
                ("StartInterval", start_interval),
            ] {
                if let Some(d) = d {
                    v[key] = json!(duration_ns(d).map_err(|e| format!("HEALTHCHECK: {e}"))?);
                }
            }
            if let Some(r) = retries {
                v["Retries"] = json!(r);
            }
            Ok(v)
        }
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub(crate) fn duration_ns(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration (like 30s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::containerfile::parse;

    fn apply_all(text: &str, args: &[(&str, &str)]) -> (ImageState, Vec<String>) {
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let file = parse(&format!("FROM scratch\n{text}")).unwrap();
        let mut state = ImageState::scratch();
        let mut texts = Vec::new();
        for step in &file.steps[1..] {
            let scope = Scope::new(&args, &state, '\\');
            let a = apply(&mut state, &step.instruction, &scope).unwrap();
            texts.push(a.text);
        }
        (state, texts)
    }

    #[test]
    fn env_label_and_the_rest() {
        let (s, texts) = apply_all(
            "ENV A=1 B=\"two words\"\nENV C $A-$V\nLABEL \"x y\"=$B\nMAINTAINER Ann\n\
             EXPOSE 80 53/udp\nVOLUME /data\nUSER $V\nWORKDIR /srv\nWORKDIR app/../app2\n\
             STOPSIGNAL SIGINT\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\nENTRYPOINT [\"/e\"]\n\
             HEALTHCHECK --interval=1m30s --retries=3 CMD wget -q localhost\nONBUILD RUN true\n",
            &[("V", "7")],
        );
        let c = &s.config["config"];
        assert_eq!(
            c["Env"],
            json!(["A=1", "B=two words", "C=1-7"]),
            "ENV sees ENV and ARG"
        );
        assert_eq!(
            c["Labels"],
            json!({"x y": "two words", "maintainer": "Ann"})
        );
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["User"], json!("7"));
        assert_eq!(c["WorkingDir"], json!("/srv/app2"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(
            c["Cmd"],
            json!(["/bin/bash", "-c", "echo hi"]),
            "SHELL applies"
        );
        assert_eq!(c["Entrypoint"], json!(["/e"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 90_000_000_000u64, "Retries": 3})
        );
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
        assert_eq!(texts[0], "ENV A=1 B=\"two words\"");
        assert_eq!(texts[1], "ENV C=1-7");
        assert_eq!(texts[6], "USER 7");
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_only() {
        let mut base = ImageState::scratch();
        base.container().insert("Cmd".into(), json!(["sh"]));
        let args = BTreeMap::new();
        let file = parse("FROM scratch\nENTRYPOINT [\"/e\"]\n").unwrap();
        let scope = Scope::new(&args, &base, '\\');
        let mut s = base.clone();
        apply(&mut s, &file.steps[1].instruction, &scope).unwrap();
        assert_eq!(s.config["config"]["Cmd"], Value::Null);
        // Control: a CMD of this stage stays.
        let (s, _) = apply_all("CMD [\"x\"]\nENTRYPOINT [\"/e\"]\n", &[]);
        assert_eq!(s.config["config"]["Cmd"], json!(["x"]));
    }

    #[test]
    fn heredoc_bodies_expand_variables_only() {
        let args = BTreeMap::from([("V".to_string(), "7".to_string())]);
        let mut s = ImageState::scratch();
        s.set_env("NAME", "Ann");
        let scope = Scope::new(&args, &s, '\\');
        let mut used = BTreeSet::new();
        let out = scope
            .heredoc("hi \"$NAME\" ${V} ${U:-none} \\$HOME 'x' $5\n", &mut used)
            .unwrap();
        assert_eq!(out, "hi \"Ann\" 7 none $HOME 'x' $5\n");
        assert_eq!(
            used,
            BTreeSet::from(["NAME".into(), "V".into(), "U".into()])
        );
        assert!(scope.heredoc("${oops", &mut used).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let args = BTreeMap::new();
        for bad in [
            "EXPOSE 80/xyz",
            "EXPOSE 99999",
            "HEALTHCHECK --interval=5y CMD true",
        ] {
            let file = parse(&format!("FROM scratch\n{bad}\n")).unwrap();
            let mut s = ImageState::scratch();
            let scope = Scope::new(&args, &s.clone(), '\\');
            assert!(
                apply(&mut s, &file.steps[1].instruction, &scope).is_err(),
                "{bad}"
            );
        }
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("ab"), "ab");
        assert_eq!(workdir("", "x"), "/x");
    }
}
