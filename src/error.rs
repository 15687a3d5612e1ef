//! Exit statuses shared by every command, as Docker and Podman use them.

/// hutch itself failed (bad input, store error, missing prerequisite).
pub const EXIT_FAILED: i32 = 125;
/// The container command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The container command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// A failure that ends hutch with its own status rather than 125: `run
/// -d` of a command that cannot be run exits 126 or 127, as Podman.
#[derive(Debug)]
pub struct ExitWith {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// `text` made safe to print: control and other unprintable characters
/// (newlines too) escaped as Rust's `escape_debug` does (`\u{1b}`, `\t`),
/// quotes and backslashes left alone, and cut to `max` characters with `…`.
/// For text that comes from a file (a tar header's bytes, a member name)
/// and ends up in a message.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// A whole message made safe to print: like [`printable`] but keeping
/// newlines and its length.
pub fn printable_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' | '\'' | '\\' => out.push(c),
        c => out.extend(c.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        let raw = String::from_utf8_lossy(b"a\x1b[31mb\x00c\r\n\"q\" \\ \xff\xfe\x7f");
        let p = printable(&raw, 100);
        assert_eq!(p, "a\\u{1b}[31mb\\0c\\r\\n\"q\" \\ \u{fffd}\u{fffd}\\u{7f}");
        assert!(p.chars().all(|c| !c.is_control()), "{p}");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable_message("one\ntwo\x07"), "one\ntwo\\u{7}");
        // Bidirectional overrides could reorder what a terminal shows.
        assert_eq!(printable("x\u{202e}y", 10), "x\\u{202e}y");
    }
}
