//! `--format '{{.State.Status}}'`: the part of Go's text/template that
//! scripts use with `podman inspect -f`, applied to JSON values.
//!
//! Text is copied as it is; an action `{{...}}` is one of
//!
//! * `{{.A.B}}`: the value at that path (`{{.}}` the whole value), printed
//!   as Go prints it: strings as they are, numbers and booleans as
//!   themselves, a list as `[a b]`, an object as `map[k:v]`, null as
//!   `<no value>`;
//! * `{{json .A.B}}`: the value as compact JSON.
//!
//! `{{-` and `-}}` trim the white space around an action, as in Go. A
//! path through a key the value does not have is an error naming the keys
//! it has (Go's "can't evaluate field").

use anyhow::{Result, bail};
use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// `{{.A.B}}`: the path's keys (empty: the whole value).
    Field(Vec<String>),
    /// `{{json .A.B}}`.
    Json(Vec<String>),
}

impl Template {
    /// Parse `src`; errors say what is wrong and where.
    pub fn parse(src: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            let mut text = rest[..start].to_string();
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("template {src:?}: an action opened with {{{{ is not closed with }}}}");
            };
            let mut action = &after[..end];
            rest = &after[end + 2..];
            if let Some(a) = action.strip_prefix('-') {
                text.truncate(text.trim_end().len());
                action = a;
            }
            let trim_after = action.ends_with('-') && action.len() > 1;
            if trim_after {
                action = &action[..action.len() - 1];
            }
            if !text.is_empty() {
                parts.push(Part::Text(text));
            }
            parts.push(parse_action(action.trim(), src)?);
            if trim_after {
                rest = rest.trim_start();
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The template applied to `v`.
    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => go_print(lookup(v, path)?, &mut out),
                Part::Json(path) => out.push_str(&serde_json::to_string(lookup(v, path)?)?),
            }
        }
        Ok(out)
    }
}

fn parse_action(action: &str, src: &str) -> Result<Part> {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [path] if path.starts_with('.') => Ok(Part::Field(parse_path(path, src)?)),
        ["json", path] if path.starts_with('.') => Ok(Part::Json(parse_path(path, src)?)),
        [] => bail!("template {src:?}: an empty action {{{{}}}}"),
        _ => bail!(
            "template {src:?}: {{{{{action}}}}} is not supported; use {{{{.Field.Path}}}} or \
             {{{{json .Field.Path}}}} (or --format json for everything)"
        ),
    }
}

/// `.A.B` → ["A", "B"]; `.` → [].
fn parse_path(path: &str, src: &str) -> Result<Vec<String>> {
    if path == "." {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = path[1..].split('.').map(String::from).collect();
    if keys.iter().any(|k| {
        k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    }) {
        bail!("template {src:?}: {path:?} is not a field path like .State.Status");
    }
    Ok(keys)
}

fn lookup<'v>(v: &'v Value, path: &[String]) -> Result<&'v Value> {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        let here = || {
            if i == 0 {
                ".".to_string()
            } else {
                format!(".{}", path[..i].join("."))
            }
        };
        cur = match cur {
            Value::Object(map) => match map.get(key) {
                Some(next) => next,
                None => {
                    let mut keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
                    keys.sort_unstable();
                    bail!(
                        "template: {} has no field {key:?} (it has: {})",
                        here(),
                        keys.join(", ")
                    );
                }
            },
            other => bail!(
                "template: cannot take field {key:?} of {} (a {}, not an object)",
                here(),
                kind(other)
            ),
        };
    }
    Ok(cur)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// `v` as Go's fmt prints it with %v.
fn go_print(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<no value>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_print(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_print(&map[k], out);
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> Result<String> {
        Template::parse(t)?.render(v)
    }

    #[test]
    fn fields_and_json_as_go_prints_them() {
        let v = json!({
            "Name": "web",
            "State": {"Status": "running", "Pid": 42, "Running": true, "Error": null},
            "Config": {"Cmd": ["sh", "-c", "echo hi"], "Labels": {"b": "2", "a": "1"}},
        });
        assert_eq!(render("{{.State.Status}}", &v).unwrap(), "running");
        assert_eq!(
            render("pid={{ .State.Pid }} up={{.State.Running}}", &v).unwrap(),
            "pid=42 up=true"
        );
        assert_eq!(render("{{.Config.Cmd}}", &v).unwrap(), "[sh -c echo hi]");
        assert_eq!(
            render("{{json .Config.Cmd}}", &v).unwrap(),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(render("{{.Config.Labels}}", &v).unwrap(), "map[a:1 b:2]");
        assert_eq!(render("{{.State.Error}}", &v).unwrap(), "<no value>");
        assert_eq!(render("{{json .Name}}", &v).unwrap(), r#""web""#);
        assert_eq!(render("no actions", &v).unwrap(), "no actions");
        assert_eq!(render("a  {{- .Name -}}  b", &v).unwrap(), "awebb");
        assert_eq!(
            render("{{json .}}", &json!({"a": 1})).unwrap(),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn mistakes_are_named() {
        let v = json!({"State": {"Status": "running", "Pid": 1}});
        let e = render("{{.State.Stat}}", &v).unwrap_err().to_string();
        assert!(
            e.contains(".State has no field \"Stat\"") && e.contains("Pid, Status"),
            "{e}"
        );
        let e = render("{{.State.Pid.X}}", &v).unwrap_err().to_string();
        assert!(e.contains("a number, not an object"), "{e}");
        for bad in [
            "{{.State",
            "{{}}",
            "{{range .State}}x{{end}}",
            "{{State}}",
            "{{.State..Pid}}",
            "{{json}}",
        ] {
            let e = Template::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("template "), "{bad}: {e}");
        }
    }
}
