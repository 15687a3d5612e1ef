//! The Containerfile (Dockerfile) parser, following Docker's documented
//! syntax: parser directives (`lex`), logical lines with continuations and
//! comments (`lex`), here-documents (`heredoc`), words, flags and JSON
//! form (`words`), typed instructions (`instruction`, `--mount` in
//! `mount`), and the variable substitution the executor applies step by
//! step with the ARG/ENV values of that moment (`substitute`).
//!
//! Parsing decides nothing that depends on values: words that Docker
//! expands are kept as written (quotes included) and expanded later by
//! `substitute::expand_word` / `expand_words`.

pub mod heredoc;
pub mod instruction;
pub mod lex;
pub mod mount;
pub mod substitute;
pub mod words;

#[cfg(test)]
mod tests;

pub use instruction::{Instruction, Step};
pub use lex::Directives;

/// A parsed Containerfile: its directives and its steps in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    pub directives: Directives,
    pub steps: Vec<Step>,
}

/// What is wrong with a Containerfile, at which line (1-based; 0 when the
/// problem is the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Containerfile{}: {message}", if *.line == 0 { String::new() } else { format!(":{line}") })]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Parses a whole Containerfile. Checks what Docker checks before running
/// anything: every instruction known and well-formed, at least one FROM,
/// and nothing but ARG before the first FROM.
pub fn parse(source: &str) -> Result<Containerfile, ParseError> {
    let (directives, lines) = lex::split(source)?;
    let mut steps = Vec::with_capacity(lines.len());
    for line in lines {
        steps.push(instruction::parse_line(line, directives.escape)?);
    }
    match steps
        .iter()
        .find(|s| !matches!(s.instruction, Instruction::Arg(_)))
    {
        None if steps.is_empty() => Err(ParseError::new(
            0,
            "the file holds no instructions; start it with FROM IMAGE",
        )),
        None => Err(ParseError::new(
            0,
            "the file has no FROM; add FROM IMAGE after the ARG lines",
        )),
        Some(first) if !matches!(first.instruction, Instruction::From(_)) => Err(ParseError::new(
            first.line,
            format!(
                "{} comes before the first FROM; only ARG may precede FROM",
                first.instruction.keyword()
            ),
        )),
        Some(_) => Ok(Containerfile { directives, steps }),
    }
}
