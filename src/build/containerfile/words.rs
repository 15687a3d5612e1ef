//! Words as Docker's parser sees them before any expansion: whitespace
//! splitting that respects quotes, leading `--flag[=value]` words, and the
//! JSON (exec) form.

/// Splits on whitespace outside quotes, keeping quotes and escapes in the
/// words (they are removed later, at expansion).
pub fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        current.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(next) = chars.next() {
                current.push(next);
            }
            continue;
        }
        match quote {
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Removes quotes and escapes without expanding anything.
pub fn unquote(word: &str, escape: char) -> String {
    let mut out = String::with_capacity(word.len());
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('\'') => out.push(c),
            _ if c == escape => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// A flag as written: `--name=value` gives `(name, Some(value))` with the
/// value unquoted, `--name` gives `(name, None)`.
pub type Flag = (String, Option<String>);

/// Takes the leading `--flag` words off `args`; returns them and the rest
/// (as written, leading whitespace removed). A lone `--` ends the flags.
pub fn take_flags(args: &str, escape: char) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let end = word_end(rest, escape);
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        let body = &word[2..];
        match body.split_once('=') {
            Some((name, value)) => flags.push((name.to_string(), Some(unquote(value, escape)))),
            None => flags.push((body.to_string(), None)),
        }
    }
    (flags, rest)
}

/// The byte offset where the first word of `text` ends (quotes respected).
fn word_end(text: &str, escape: char) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == escape => escaped = true,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() => return at,
            None => {}
        }
    }
    text.len()
}

/// Docker's rule for exec form: the argument is a JSON array of strings;
/// anything else (including a malformed array) is shell form.
pub fn json_array(args: &str) -> Option<Vec<String>> {
    let trimmed = args.trim();
    if !trimmed.starts_with('[') || !trimmed.ends_with(']') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}
