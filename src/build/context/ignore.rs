//! `.containerignore` / `.dockerignore`: which context paths a build may
//! not see, with Docker's rules (moby/patternmatcher and its ignorefile
//! reader), written here from their documentation and behaviour.
//!
//! - One pattern a line; a line starting with `#` is a comment; lines are
//!   trimmed and blank ones skipped; a UTF-8 BOM on the first is dropped.
//! - `!` before a pattern makes it an exception; the LAST pattern that
//!   matches a path decides whether it is excluded.
//! - A pattern is cleaned like Go's `filepath.Clean` (`./a//b/` is `a/b`),
//!   then a leading `/` is removed: patterns are relative to the context.
//! - Syntax of Go's `filepath.Match`: `*` any run of characters but `/`,
//!   `?` one character but `/`, `[a-z]`/`[^a-z]` classes, `\` escapes the
//!   next character; plus `**`, any number of directories (`**/*.go`
//!   matches `a.go` and `x/y/a.go`; a final `**` matches everything).
//!   Classes follow Go's grammar: only `^` negates (`[!a]` is `!` or `a`),
//!   and, as in `filepath.Match`, never match `/` (Docker's regexp
//!   translation lets `[^a]` match `/`; the documented rule is kept).
//! - A pattern matches a path when it matches the path or one of its
//!   parent directories: `build` excludes `build/out/x.o`.
//!
//! Paths are context-relative with `/` separators and no leading `/`.

use std::path::{Path, PathBuf};

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Lit(char),
    /// `?`: one character that is not `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` (with its `/` if one follows) before more pattern: nothing, or
    /// any characters ending with `/` (regexp `(.*/)?`, as Docker).
    AnyDirs,
    /// `**` at the end: anything at all.
    All,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    /// The cleaned text, without the `!`.
    text: String,
    exception: bool,
    tokens: Vec<Token>,
}

/// The rules of one ignore file (empty when there is none).
#[derive(Clone, Debug, Default)]
pub(crate) struct Ignore {
    patterns: Vec<Pattern>,
    /// The file they came from, for messages.
    source: Option<PathBuf>,
}

/// Go's `filepath.Clean` for `/`-separated text.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(last) if *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// One character of a class range (Go's `getEsc`).
fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    match chars.get(*i) {
        None => return Err("unterminated character class `[`".to_string()),
        Some('-') | Some(']') => {
            return Err("a character class range lacks a character before `-` or `]`".to_string());
        }
        Some('\\') => {
            *i += 1;
            if chars.get(*i).is_none() {
                return Err("unterminated character class `[`".to_string());
            }
        }
        Some(_) => {}
    }
    let c = chars[*i];
    *i += 1;
    Ok(c)
}

fn compile(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i == chars.len() {
                    Token::All
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    tokens.push(Token::Lit(next));
                    i += 1;
                }
                None => return Err("`\\` at the end escapes nothing".to_string()),
            },
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i)?;
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        hi = class_char(&chars, &mut i)?;
                        if hi < lo {
                            return Err(format!("the class range `{lo}-{hi}` runs backwards"));
                        }
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Lit(c)),
        }
    }
    Ok(tokens)
}

/// The states a pattern can be in: `at[k]` before token k, `inside[k]`
/// within the `.*` of an `AnyDirs` token k.
struct States {
    at: Vec<bool>,
    inside: Vec<bool>,
}

impl States {
    fn start(n: usize) -> States {
        let mut s = States {
            at: vec![false; n + 1],
            inside: vec![false; n + 1],
        };
        s.at[0] = true;
        s
    }

    fn alive(&self) -> bool {
        self.at.iter().chain(&self.inside).any(|&b| b)
    }
}

impl Pattern {
    fn new(line: &str) -> Result<Pattern, String> {
        let (exception, rest) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if exception && rest.is_empty() {
            return Err("`!` alone is not a pattern: write `!` then the path to keep".to_string());
        }
        let mut text = clean(rest);
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        let tokens = compile(&text)?;
        Ok(Pattern {
            text,
            exception,
            tokens,
        })
    }

    /// Tokens that can be skipped without reading a character.
    fn close(&self, s: &mut States) {
        for k in 0..self.tokens.len() {
            if s.at[k] && matches!(self.tokens[k], Token::Star | Token::AnyDirs | Token::All) {
                s.at[k + 1] = true;
            }
        }
    }

    /// The states after reading `text` from `s`.
    fn run(&self, mut s: States, text: &str) -> States {
        let n = self.tokens.len();
        self.close(&mut s);
        for c in text.chars() {
            let mut next = States {
                at: vec![false; n + 1],
                inside: vec![false; n + 1],
            };
            for k in 0..n {
                if s.inside[k] {
                    next.inside[k] = true;
                    if c == '/' {
                        next.at[k + 1] = true;
                    }
                }
                if !s.at[k] {
                    continue;
                }
                match &self.tokens[k] {
                    Token::Lit(x) if *x == c => next.at[k + 1] = true,
                    Token::Lit(_) => {}
                    Token::One if c != '/' => next.at[k + 1] = true,
                    Token::One => {}
                    Token::Star if c != '/' => next.at[k] = true,
                    Token::Star => {}
                    Token::Class { .. } if c == '/' => {}
                    Token::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inside != *negated {
                            next.at[k + 1] = true;
                        }
                    }
                    Token::AnyDirs => {
                        next.inside[k] = true;
                        if c == '/' {
                            next.at[k + 1] = true;
                        }
                    }
                    Token::All => next.at[k] = true,
                }
            }
            self.close(&mut next);
            if !next.alive() {
                return next;
            }
            s = next;
        }
        s
    }

    /// Whether the whole of `path` matches.
    fn matches_exactly(&self, path: &str) -> bool {
        let n = self.tokens.len();
        self.run(States::start(n), path).at[n]
    }

    /// Whether `path` or one of its parent directories matches.
    fn matches(&self, path: &str) -> bool {
        if self.matches_exactly(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.matches_exactly(&path[..i]))
    }

    /// Whether some path below the directory `dir` could match.
    fn may_match_below(&self, dir: &str) -> bool {
        let n = self.tokens.len();
        self.run(States::start(n), &format!("{dir}/")).alive()
    }
}

impl Ignore {
    /// The rules of an ignore file's text; `source` names it in errors.
    pub(crate) fn parse(text: &str, source: Option<&Path>) -> Result<Ignore, String> {
        let shown = source.map_or_else(
            || "the ignore file".to_string(),
            |p| p.display().to_string(),
        );
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let pattern = Pattern::new(line).map_err(|e| {
                format!(
                    "reading {shown}, line {}: bad pattern `{line}`: {e}; fix or remove that line",
                    index + 1
                )
            })?;
            patterns.push(pattern);
        }
        Ok(Ignore {
            patterns,
            source: source.map(Path::to_path_buf),
        })
    }

    /// The rules for a build of `context`: the Containerfile's own
    /// `FILE.containerignore` or `FILE.dockerignore` beside it when
    /// `containerfile` is given and one exists, else the context's
    /// `.containerignore`, else its `.dockerignore`, else none.
    pub(crate) fn load(context: &Path, containerfile: Option<&Path>) -> Result<Ignore, String> {
        let mut candidates = Vec::new();
        if let Some(file) = containerfile {
            for suffix in [".containerignore", ".dockerignore"] {
                let mut name = file.as_os_str().to_owned();
                name.push(suffix);
                candidates.push(PathBuf::from(name));
            }
        }
        candidates.push(context.join(".containerignore"));
        candidates.push(context.join(".dockerignore"));
        for path in candidates {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    return Ignore::parse(&text, Some(&path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "reading the ignore file {}: {e}; make it readable or remove it",
                        path.display()
                    ));
                }
            }
        }
        Ok(Ignore::default())
    }

    /// The file the rules came from, if any.
    pub(crate) fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether the context-relative `path` is excluded from the build.
    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that would change the answer is worth trying.
            if p.exception != excluded {
                continue;
            }
            if p.matches(path) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether an exception could keep something below the excluded
    /// directory `dir`: if not, a walk need not descend into it.
    pub(crate) fn may_contain_exceptions(&self, dir: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.exception && p.may_match_below(dir))
    }

    /// The cleaned patterns, `!` before exceptions (for tests and messages).
    pub(crate) fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| format!("{}{}", if p.exception { "!" } else { "" }, p.text))
            .collect()
    }
}

/// One path component of a `COPY`/`ADD` source with wildcards, matched
/// against directory entry names with the same syntax.
#[derive(Clone, Debug)]
pub(crate) struct NameGlob {
    pattern: Pattern,
}

impl NameGlob {
    /// `Ok(None)` when `component` has no wildcard (a plain name).
    pub(crate) fn new(component: &str) -> Result<Option<NameGlob>, String> {
        if !component.contains(['*', '?', '[', '\\']) {
            return Ok(None);
        }
        let tokens = compile(component)?;
        Ok(Some(NameGlob {
            pattern: Pattern {
                text: component.to_string(),
                exception: false,
                tokens,
            },
        }))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        self.pattern.matches_exactly(name)
    }
}
