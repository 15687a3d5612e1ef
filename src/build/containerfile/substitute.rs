//! Variable substitution as Docker's shell lexer does it, for the
//! instructions Docker expands (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL
//! USER VOLUME WORKDIR ONBUILD, and ARG defaults): `$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?message}`, `${VAR?message}`; the escape character takes the next
//! character literally; single quotes take everything literally; double
//! quotes expand but do not split. Quotes are removed. Unset variables
//! expand to nothing. Every variable looked up is reported, set or not,
//! because a build cache key depends on the build args a step used.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How deep `${a:-${b:-...}}` may nest before it is refused.
pub const MAX_NESTING: usize = 32;

/// The variables in scope: the stage's ARG and ENV values.
pub trait Vars {
    fn var(&self, name: &str) -> Option<&str>;
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubstituteError(pub String);

/// One word expanded, and the variables it looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded<T> {
    pub value: T,
    pub used: BTreeSet<String>,
}

/// Expands one word (quotes removed, no splitting): ENV and LABEL values,
/// WORKDIR, USER, COPY sources, ...
pub fn expand_word(
    word: &str,
    escape: char,
    vars: &dyn Vars,
) -> Result<Expanded<String>, SubstituteError> {
    let mut lexer = Lexer::new(word, escape, vars);
    let mut out = Out::new(false);
    lexer.process(None, &mut out, 0)?;
    Ok(Expanded {
        value: out.current,
        used: lexer.used,
    })
}

/// Expands and splits into words at unquoted whitespace (in the text or in
/// an unquoted expansion): EXPOSE, VOLUME in word form.
pub fn expand_words(
    text: &str,
    escape: char,
    vars: &dyn Vars,
) -> Result<Expanded<Vec<String>>, SubstituteError> {
    let mut lexer = Lexer::new(text, escape, vars);
    let mut out = Out::new(true);
    lexer.process(None, &mut out, 0)?;
    out.end_word();
    Ok(Expanded {
        value: out.words,
        used: lexer.used,
    })
}

/// The text built so far, split into words when `split`.
struct Out {
    split: bool,
    words: Vec<String>,
    current: String,
    started: bool,
}

impl Out {
    fn new(split: bool) -> Self {
        Self {
            split,
            words: Vec::new(),
            current: String::new(),
            started: false,
        }
    }

    fn push(&mut self, c: char) {
        self.current.push(c);
        self.started = true;
    }

    /// Text from a quoted context: never split.
    fn push_quoted(&mut self, s: &str) {
        self.current.push_str(s);
        self.started = true;
    }

    /// An unquoted expansion: split at whitespace when splitting.
    fn push_unquoted(&mut self, s: &str) {
        if !self.split {
            return self.push_quoted(s);
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.end_word();
            } else {
                self.push(c);
            }
        }
    }

    fn end_word(&mut self) {
        if self.started {
            self.words.push(std::mem::take(&mut self.current));
            self.started = false;
        }
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    escape: char,
    vars: &'a dyn Vars,
    used: BTreeSet<String>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, vars: &'a dyn Vars) -> Self {
        Self {
            chars: text.chars().collect(),
            at: 0,
            escape,
            vars,
            used: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    /// Reads until `stop` (which is consumed) or the end; `depth` counts the
    /// `${...:-word}` levels around this call.
    fn process(
        &mut self,
        stop: Option<char>,
        out: &mut Out,
        depth: usize,
    ) -> Result<(), SubstituteError> {
        loop {
            let Some(c) = self.next() else {
                return match stop {
                    Some(s) => Err(SubstituteError(format!("missing `{s}` in a ${{...}}"))),
                    None => Ok(()),
                };
            };
            if Some(c) == stop {
                return Ok(());
            }
            if c == self.escape {
                // A lone escape at the end is dropped, as Docker does.
                if let Some(next) = self.next() {
                    out.push(next);
                }
                continue;
            }
            match c {
                '\'' => self.single_quoted(out)?,
                '"' => self.double_quoted(out, depth)?,
                '$' => {
                    let value = self.dollar(depth)?;
                    match value {
                        Some(v) => out.push_unquoted(&v),
                        None => out.push('$'),
                    }
                }
                c if out.split && c.is_whitespace() => out.end_word(),
                c => out.push(c),
            }
        }
    }

    fn single_quoted(&mut self, out: &mut Out) -> Result<(), SubstituteError> {
        out.started = true;
        loop {
            match self.next() {
                None => {
                    return Err(SubstituteError(
                        "a single quote is not closed; add the closing '".to_string(),
                    ));
                }
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut Out, depth: usize) -> Result<(), SubstituteError> {
        out.started = true;
        loop {
            match self.next() {
                None => {
                    return Err(SubstituteError(
                        "a double quote is not closed; add the closing \"".to_string(),
                    ));
                }
                Some('"') => return Ok(()),
                Some('$') => match self.dollar(depth)? {
                    Some(v) => out.push_quoted(&v),
                    None => out.push('$'),
                },
                Some(c) if c == self.escape => match self.peek() {
                    None => {}
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.at += 1;
                        out.push(n);
                    }
                    Some(_) => out.push(c),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// After a `$`: the expansion, or None when no variable follows (the
    /// `$` is then literal).
    fn dollar(&mut self, depth: usize) -> Result<Option<String>, SubstituteError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok(None);
            }
            return Ok(Some(self.lookup(&name).unwrap_or_default()));
        }
        self.at += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(SubstituteError(
                "bad substitution: ${...} needs a variable name".to_string(),
            ));
        }
        let colon = self.peek() == Some(':');
        if colon {
            self.at += 1;
        }
        let op = self.next();
        if op == Some('}') && !colon {
            return Ok(Some(self.lookup(&name).unwrap_or_default()));
        }
        let op = match op {
            Some(c @ ('-' | '+' | '?')) => c,
            Some(c) => {
                return Err(SubstituteError(format!(
                    "bad substitution: modifier `{}{c}` in ${{{name}...}} is not supported; \
                     use :- - :+ + :? ?",
                    if colon { ":" } else { "" }
                )));
            }
            None => return Err(SubstituteError("missing `}` in a ${...}".to_string())),
        };
        if depth + 1 > MAX_NESTING {
            return Err(SubstituteError(format!(
                "${{...}} nests deeper than {MAX_NESTING} levels; simplify the expression"
            )));
        }
        let mut inner = Out::new(false);
        self.process(Some('}'), &mut inner, depth + 1)?;
        let word = inner.current;
        let value = self.lookup(&name);
        // With a colon, an empty value counts as unset.
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        Ok(Some(match op {
            '-' if set => value.unwrap_or_default(),
            '-' => word,
            '+' if set => word,
            '+' => String::new(),
            _ if set => value.unwrap_or_default(),
            _ if word.is_empty() => {
                return Err(SubstituteError(format!("{name}: is not set")));
            }
            _ => return Err(SubstituteError(format!("{name}: {word}"))),
        }))
    }

    /// A variable name: letters, digits, `_` (a leading digit is a name
    /// of one digit, as a positional parameter).
    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(c) = self.peek().filter(char::is_ascii_digit) {
            self.at += 1;
            name.push(c);
            return name;
        }
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            self.at += 1;
            name.push(c);
        }
        name
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        self.vars.var(name).map(str::to_string)
    }
}
