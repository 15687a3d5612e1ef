//! From text to logical lines: parser directives at the top, comments
//! dropped, continuation lines joined, here-document bodies collected.
//! Each logical line keeps the 1-based number of its first line.

use super::ParseError;
use super::heredoc::{self, Heredoc};

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `\` (the default) or `` ` ``.
    pub escape: char,
    /// `# syntax=`: kept, not acted on (hutch has one frontend).
    pub syntax: Option<String>,
    /// `# check=`: kept, not acted on.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// One instruction's text with its continuations joined, and the bodies of
/// the here-documents it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    pub line: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

/// Splits a Containerfile into its directives and logical lines.
pub fn split(source: &str) -> Result<(Directives, Vec<LogicalLine>), ParseError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<&str> = source
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut i = 0;
    let directives = directives(&lines, &mut i)?;
    let escape = directives.escape;
    let mut out = Vec::new();
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let (part, mut more) = strip_continuation(first, escape);
        let mut text = part.to_string();
        while more && i < lines.len() {
            let line = lines[i];
            i += 1;
            let trimmed = line.trim_start();
            // Comment lines and empty lines inside a continuation are
            // skipped, as Docker does.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (part, again) = strip_continuation(line, escape);
            text.push_str(part);
            more = again;
        }
        let text = text.trim_end().to_string();
        let markers = heredoc::markers(&text, escape);
        let heredocs = heredoc::read_bodies(&markers, &lines, &mut i, start)?;
        out.push(LogicalLine {
            line: start,
            text,
            heredocs,
        });
    }
    Ok((directives, out))
}

/// Reads the parser directives: lines `# key=value` before anything else.
/// The first line that is not a known directive (an unknown one, a comment,
/// a blank line, an instruction) ends them and is read as usual.
fn directives(lines: &[&str], i: &mut usize) -> Result<Directives, ParseError> {
    let mut found = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    while let Some(line) = lines.get(*i) {
        let Some((key, value)) = directive(line) else {
            break;
        };
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if seen.contains(&key) {
            return Err(ParseError::new(
                *i + 1,
                format!("only one `{key}` parser directive may be given; remove this one"),
            ));
        }
        match key.as_str() {
            "escape" => {
                found.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError::new(
                            *i + 1,
                            format!("escape directive `{value}` is not valid; use \\ or `"),
                        ));
                    }
                }
            }
            "syntax" => found.syntax = Some(value),
            _ => found.check = Some(value),
        }
        seen.push(key);
        *i += 1;
    }
    Ok(found)
}

/// `# key = value` (key lowercased), as Docker's
/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// The line without its trailing escape character (which may be followed
/// by spaces and tabs), and whether it had one.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}
