//! Here-documents: `<<EOF`, `<<-EOF` (leading tabs stripped), `<<"EOF"`
//! or `<<'EOF'` (no expansion), several on one line, on RUN, COPY and ADD.

use super::ParseError;
use super::words::{split_words, unquote};

/// One here-document as the instruction will use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, unquoted.
    pub name: String,
    /// The lines between the marker line and the delimiter, each ending
    /// with `\n`; with `chomp`, already without their leading tabs.
    pub body: String,
    /// False when the delimiter was quoted: the body is used as written.
    /// True: the executor expands variables in it (for COPY/ADD; for RUN
    /// the shell does).
    pub expand: bool,
    /// `<<-`: leading tabs stripped from the body and the delimiter line.
    pub chomp: bool,
}

/// A here-document opened on an instruction line, body not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
}

/// The here-documents a logical line opens, in order. Only RUN, COPY and
/// ADD take them; a marker is a whole word `[digits]<<[-]NAME`.
pub(crate) fn markers(text: &str, escape: char) -> Vec<Marker> {
    let keyword = text.split_whitespace().next().unwrap_or("");
    if !["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(keyword))
    {
        return Vec::new();
    }
    split_words(text, escape)
        .iter()
        .skip(1)
        .filter_map(|w| marker(w, escape))
        .collect()
}

/// Reads a word as a here-document marker, if it is one.
pub(crate) fn marker(word: &str, escape: char) -> Option<Marker> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['\'', '"', escape]);
    let name = unquote(rest, escape);
    if name.is_empty() {
        return None;
    }
    Some(Marker {
        name,
        expand: !quoted,
        chomp,
    })
}

/// Reads the bodies of `markers` from `lines[*i..]`, one after the other,
/// advancing `*i` past each delimiter line.
pub(crate) fn read_bodies(
    markers: &[Marker],
    lines: &[&str],
    i: &mut usize,
    start: usize,
) -> Result<Vec<Heredoc>, ParseError> {
    let mut out = Vec::with_capacity(markers.len());
    for m in markers {
        let mut body = String::new();
        loop {
            let Some(line) = lines.get(*i) else {
                return Err(ParseError::new(
                    start,
                    format!(
                        "the here-document <<{0} is not closed; end it with a line holding only {0}",
                        m.name
                    ),
                ));
            };
            *i += 1;
            let content = if m.chomp {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if content == m.name {
                break;
            }
            body.push_str(content);
            body.push('\n');
        }
        out.push(Heredoc {
            name: m.name.clone(),
            body,
            expand: m.expand,
            chomp: m.chomp,
        });
    }
    Ok(out)
}
