//! Reading a TOML file against a serde schema, with every error naming
//! the line and the dotted key. Profiles use it, and so does every other
//! hutch file written by hand (`hutch.toml`, through [`parse_toml`]).

use super::ProfileFile;
use crate::profile::ProfileError;
use serde::de::DeserializeOwned;

/// Parse one profile file. `origin` names it in errors ("profile PATH" or
/// "built-in profile NAME").
pub fn parse(text: &str, origin: &str) -> Result<ProfileFile, ProfileError> {
    parse_toml(text, &SECTIONS).map_err(|e| ProfileError::Invalid {
        origin: origin.to_owned(),
        line: e.line,
        key: e.key,
        message: e.message,
    })
}

/// What is wrong in a TOML file, and where: the 1-based line and the
/// dotted key (`network.mode`, `services.db.ports`) when they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

/// Parse `text` as a `T` (whose structs should `deny_unknown_fields`, and
/// whose values check themselves while deserialised, so that a bad value's
/// error has that value's span). `sections` are the top-level keys that
/// must be tables: given another way, the message says how to write them.
pub fn parse_toml<T: DeserializeOwned>(text: &str, sections: &[&str]) -> Result<T, TomlError> {
    // Syntax first: its errors have no key of their own.
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(syntax_error(text, &e)),
    };
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else {
            return TomlError {
                line: None,
                key: None,
                message: e.message().to_owned(),
            };
        };
        let line = line_of(text, span.start);
        let path = key_path(doc.get_ref(), span.start).unwrap_or_default();
        let message = e.message().trim_end();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            // serde: "unknown field `x`, expected one of `a`, `b`" (or "`a` or `b`").
            let (field, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
            let field = field.trim_end_matches('`');
            let place = match path.len() {
                0 | 1 => "at the top level".to_owned(),
                n => format!("in [{}]", path[..n - 1].join(".")),
            };
            let allowed = if expected.is_empty() {
                String::new()
            } else {
                format!(
                    "; allowed keys: {}",
                    expected.replace("one of ", "").replace("` or `", "`, `")
                )
            };
            return TomlError {
                line: Some(line),
                key: None,
                message: format!("unknown key `{field}` {place}{allowed}"),
            };
        }
        let message = match path.as_slice() {
            // A section given as a plain value or as an array of tables:
            // serde's message would name a Rust type or a field inside.
            [section]
                if sections.contains(&section.as_str()) && !is_table(doc.get_ref(), section) =>
            {
                format!(
                    "`{section}` must be a table: write [{section}] on a line of its own, \
                     then its keys"
                )
            }
            // serde names the Rust type of a table ("expected struct X").
            _ if message.contains(", expected struct ") => {
                let (head, _) = message
                    .split_once(", expected struct ")
                    .unwrap_or((message, ""));
                format!(
                    "{}, expected a table",
                    head.replace("invalid type: map", "invalid type: table")
                )
            }
            _ => message
                .replace("expected a sequence", "expected an array [...]")
                .replace("invalid type: sequence", "invalid type: array")
                .replace("invalid type: map", "invalid type: table"),
        };
        TomlError {
            line: Some(line),
            key: (!path.is_empty()).then(|| path.join(".")),
            message,
        }
    })
}

/// The line of the key at `path` (`["services", "db"]`: the line of
/// `[services.db]`, or of `db = {...}`), for errors about a whole table.
pub fn key_line(text: &str, path: &[&str]) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    for (i, name) in path.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == name)?;
        if i + 1 == path.len() {
            return Some(line_of(text, k.span().start));
        }
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// The tables of a profile file.
const SECTIONS: [&str; 6] = ["filesystem", "user", "network", "security", "limits", "env"];

fn is_table(doc: &toml::de::DeTable<'_>, key: &str) -> bool {
    doc.iter()
        .any(|(k, v)| k.get_ref() == key && matches!(v.get_ref(), toml::de::DeValue::Table(_)))
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose key or value covers byte `pos`, deepest first.
fn key_path(table: &toml::de::DeTable<'_>, pos: usize) -> Option<Vec<String>> {
    for (k, v) in table.iter() {
        let name = k.get_ref().to_string();
        if k.span().contains(&pos) {
            return Some(vec![name]);
        }
        let inner = match v.get_ref() {
            toml::de::DeValue::Table(t) => key_path(t, pos),
            toml::de::DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                toml::de::DeValue::Table(t) => key_path(t, pos),
                _ => None,
            }),
            _ => None,
        };
        if let Some(mut path) = inner {
            path.insert(0, name);
            return Some(path);
        }
        let span = v.span();
        if span.contains(&pos) || (span.is_empty() && span.start == pos) {
            return Some(vec![name]);
        }
    }
    None
}

/// A TOML syntax error: the line, the key written on that line (under its
/// `[section]`), and the text of the line.
fn syntax_error(text: &str, e: &toml::de::Error) -> TomlError {
    let message = e.message().lines().next().unwrap_or("").trim().to_owned();
    let Some(span) = e.span() else {
        return TomlError {
            line: None,
            key: None,
            message: format!("invalid TOML: {message}"),
        };
    };
    let line = line_of(text, span.start);
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line - 1).copied().unwrap_or("").trim();
    let section = lines[..(line - 1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = if this.starts_with('[') {
        Some(
            this.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        )
    } else {
        this.split_once('=').map(|(k, _)| {
            let k = k.trim().trim_matches('"');
            match &section {
                Some(s) => format!("{s}.{k}"),
                None => k.to_owned(),
            }
        })
    };
    let shown: String = this.chars().take(80).collect();
    TomlError {
        line: Some(line),
        key: key.filter(|k| !k.is_empty()),
        message: format!("invalid TOML: {message} (the line reads `{shown}`)"),
    }
}
