//! Logical lines into typed instructions, flags checked. Words that Docker
//! expands are kept as written; the executor expands them with
//! `substitute` when it reaches the step (RUN, CMD, ENTRYPOINT, SHELL and
//! HEALTHCHECK commands are not expanded: the shell does that).

use super::ParseError;
use super::heredoc::{self, Heredoc};
use super::lex::LogicalLine;
use super::mount::{self, Mount};
use super::words::{json_array, split_words, take_flags};

/// One instruction with the line it starts on and its text as joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub text: String,
    pub instruction: Instruction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    /// SHELL takes the JSON form only.
    Shell(Vec<String>),
    Copy(Copy),
    Add(Copy),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Label(Vec<KeyValue>),
    /// Words as written (`80/tcp`, `$PORT`).
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Onbuild(Onbuild),
    Maintainer(String),
}

impl Instruction {
    /// The instruction's name as Docker spells it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }

    /// Whether Docker expands this instruction's words (its list); RUN,
    /// CMD, ENTRYPOINT, SHELL, HEALTHCHECK leave it to the shell. The
    /// executor's steps follow it (a unit test checks the list).
    #[cfg(test)]
    pub fn expands_variables(&self) -> bool {
        matches!(
            self,
            Instruction::Add(_)
                | Instruction::Copy(_)
                | Instruction::Env(_)
                | Instruction::Expose(_)
                | Instruction::From(_)
                | Instruction::Label(_)
                | Instruction::StopSignal(_)
                | Instruction::User(_)
                | Instruction::Volume(_)
                | Instruction::Workdir(_)
                | Instruction::Onbuild(_)
                | Instruction::Arg(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub platform: Option<String>,
    pub image: String,
    /// `AS name`.
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub mounts: Vec<Mount>,
    pub network: Option<Network>,
    pub security: Option<Security>,
    pub command: Command,
    pub heredocs: Vec<Heredoc>,
}

/// Exec form (a JSON array) or shell form (the text, run by the SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// COPY and ADD. `checksum`, `keep_git_dir` and `unpack` are ADD's only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub sources: Vec<Source>,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(String),
    Heredoc(Heredoc),
}

/// `key=value` of ENV and LABEL, both as written (quotes kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `ARG name[=default]`, the default as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: turn off the image's check.
    None,
    /// Durations kept as written (`30s`, `1m30s`).
    Check {
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<u32>,
        command: Command,
    },
}

/// `ONBUILD <instruction>`: the trigger's text and its parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    pub text: String,
    pub inner: Box<Instruction>,
}

/// Parses one logical line.
pub fn parse_line(line: LogicalLine, escape: char) -> Result<Step, ParseError> {
    let instruction = parse_text(&line.text, line.heredocs, line.line, escape, true)?;
    Ok(Step {
        line: line.line,
        text: line.text,
        instruction,
    })
}

fn parse_text(
    text: &str,
    heredocs: Vec<Heredoc>,
    line: usize,
    escape: char,
    top: bool,
) -> Result<Instruction, ParseError> {
    let text = text.trim_start();
    let (keyword, args) = match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    };
    let upper = keyword.to_ascii_uppercase();
    let cx = Cx {
        line,
        name: &upper,
        escape,
    };
    Ok(match upper.as_str() {
        "FROM" => Instruction::From(cx.from(args)?),
        "RUN" => Instruction::Run(cx.run(args, heredocs)?),
        "CMD" => Instruction::Cmd(cx.command(args)?),
        "ENTRYPOINT" => Instruction::Entrypoint(cx.command(args)?),
        "SHELL" => Instruction::Shell(cx.shell(args)?),
        "COPY" => Instruction::Copy(cx.copy(args, heredocs, false)?),
        "ADD" => Instruction::Add(cx.copy(args, heredocs, true)?),
        "ENV" => Instruction::Env(cx.name_values(args)?),
        "LABEL" => Instruction::Label(cx.name_values(args)?),
        "ARG" => Instruction::Arg(cx.arg(args)?),
        "EXPOSE" => Instruction::Expose(cx.some_words(args, "a port")?),
        "VOLUME" => Instruction::Volume(cx.volume(args)?),
        "USER" => Instruction::User(cx.one(args, "a user")?),
        "WORKDIR" => Instruction::Workdir(cx.one(args, "a directory")?),
        "STOPSIGNAL" => Instruction::StopSignal(cx.one(args, "a signal")?),
        "MAINTAINER" => Instruction::Maintainer(cx.one(args, "a name")?),
        "HEALTHCHECK" => Instruction::Healthcheck(cx.healthcheck(args)?),
        "ONBUILD" if top => Instruction::Onbuild(cx.onbuild(args)?),
        "ONBUILD" => return Err(cx.err("ONBUILD ONBUILD is not allowed")),
        _ => {
            return Err(ParseError::new(
                line,
                format!(
                    "unknown instruction `{keyword}`; the instructions are FROM, RUN, CMD, \
                     ENTRYPOINT, SHELL, COPY, ADD, ENV, ARG, LABEL, EXPOSE, VOLUME, USER, \
                     WORKDIR, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER"
                ),
            ));
        }
    })
}

/// What every instruction parser needs: where it is and what it is called.
struct Cx<'a> {
    line: usize,
    name: &'a str,
    escape: char,
}

/// The flags given, by name: the last value (`Str`, `Bool`) or all (`Many`).
type FlagValues = Vec<(String, Vec<String>)>;

/// How a flag is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Many,
}

impl Cx<'_> {
    fn err(&self, what: impl std::fmt::Display) -> ParseError {
        ParseError::new(self.line, format!("{} {what}", self.name))
    }

    /// Takes the leading flags and checks them against `known`; returns the
    /// values by name (the last one for `Str`, all for `Many`) and the rest.
    fn flags<'t>(
        &self,
        args: &'t str,
        known: &[(&str, Kind)],
    ) -> Result<(FlagValues, &'t str), ParseError> {
        let (given, rest) = take_flags(args, self.escape);
        let mut out: FlagValues = Vec::new();
        for (name, value) in given {
            let Some((_, kind)) = known.iter().find(|(k, _)| *k == name) else {
                let names: Vec<String> = known.iter().map(|(k, _)| format!("--{k}")).collect();
                return Err(self.err(format!(
                    "does not take --{name}; it takes {}",
                    if names.is_empty() {
                        "no flags".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) if v == "true" || v == "false" => v,
                (Kind::Bool, Some(v)) => {
                    return Err(self.err(format!("--{name}={v}: the value must be true or false")));
                }
                (_, None) => return Err(self.err(format!("--{name} needs a value (--{name}=...)"))),
                (_, Some(v)) => v,
            };
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) if *kind == Kind::Many => values.push(value),
                Some((_, values)) => *values = vec![value],
                None => out.push((name, vec![value])),
            }
        }
        Ok((out, rest))
    }

    fn from(&self, args: &str) -> Result<From, ParseError> {
        let (flags, rest) = self.flags(args, &[("platform", Kind::Str)])?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (image, alias) = match words.as_slice() {
            [image] => (image.to_string(), None),
            // Docker lowercases stage names.
            [image, as_, alias] if as_.eq_ignore_ascii_case("as") => {
                (image.to_string(), Some(alias.to_ascii_lowercase()))
            }
            [] => return Err(self.err("needs an image: FROM IMAGE [AS NAME]")),
            _ => {
                return Err(
                    self.err("takes an image and an optional AS NAME: FROM IMAGE [AS NAME]")
                );
            }
        };
        if let Some(alias) = &alias {
            let ok = alias.starts_with(|c: char| c.is_ascii_alphabetic())
                && alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(self.err(format!(
                    "stage name `{alias}` is not valid; use a letter then letters, digits, _ . -"
                )));
            }
        }
        Ok(From {
            platform: last(&flags, "platform"),
            image,
            alias,
        })
    }

    fn run(&self, args: &str, heredocs: Vec<Heredoc>) -> Result<Run, ParseError> {
        let (flags, rest) = self.flags(
            args,
            &[
                ("mount", Kind::Many),
                ("network", Kind::Str),
                ("security", Kind::Str),
            ],
        )?;
        let mounts = all(&flags, "mount")
            .iter()
            .map(|m| mount::parse(m, self.line))
            .collect::<Result<Vec<_>, _>>()?;
        let network = match last(&flags, "network").as_deref() {
            None => None,
            Some("default") => Some(Network::Default),
            Some("none") => Some(Network::None),
            Some("host") => Some(Network::Host),
            Some(other) => {
                return Err(self.err(format!(
                    "--network={other} is not known; use none, default or host"
                )));
            }
        };
        let security = match last(&flags, "security").as_deref() {
            None => None,
            Some("sandbox") => Some(Security::Sandbox),
            Some("insecure") => Some(Security::Insecure),
            Some(other) => {
                return Err(self.err(format!(
                    "--security={other} is not known; use sandbox or insecure"
                )));
            }
        };
        let command = match json_array(rest) {
            Some(argv) => Command::Exec(argv),
            None if rest.is_empty() => return Err(self.err("needs a command")),
            None => Command::Shell(rest.to_string()),
        };
        Ok(Run {
            mounts,
            network,
            security,
            command,
            heredocs,
        })
    }

    fn command(&self, args: &str) -> Result<Command, ParseError> {
        match json_array(args) {
            Some(argv) => Ok(Command::Exec(argv)),
            None if args.is_empty() => Err(self.err("needs a command")),
            None => Ok(Command::Shell(args.to_string())),
        }
    }

    fn shell(&self, args: &str) -> Result<Vec<String>, ParseError> {
        match json_array(args) {
            Some(argv) if !argv.is_empty() => Ok(argv),
            _ => Err(self.err(r#"takes the JSON form only: SHELL ["/bin/sh", "-c"]"#)),
        }
    }

    fn copy(&self, args: &str, heredocs: Vec<Heredoc>, add: bool) -> Result<Copy, ParseError> {
        let mut known = vec![
            ("from", Kind::Str),
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("parents", Kind::Bool),
            ("exclude", Kind::Many),
        ];
        if add {
            known.extend([("checksum", Kind::Str), ("keep-git-dir", Kind::Bool)]);
        }
        let (flags, rest) = self.flags(args, &known)?;
        let words: Vec<Source> = match json_array(rest) {
            Some(list) => list.into_iter().map(Source::Path).collect(),
            None => {
                let mut docs = heredocs.into_iter();
                rest.split_whitespace()
                    .map(|w| match heredoc::marker(w, self.escape) {
                        Some(_) => docs
                            .next()
                            .map(Source::Heredoc)
                            .unwrap_or_else(|| Source::Path(w.to_string())),
                        None => Source::Path(w.to_string()),
                    })
                    .collect()
            }
        };
        let mut sources = words;
        let dest = match sources.pop() {
            Some(Source::Path(dest)) if !sources.is_empty() => dest,
            Some(Source::Heredoc(_)) => {
                return Err(self.err("needs a destination after the here-document"));
            }
            _ => return Err(self.err("needs a source and a destination")),
        };
        Ok(Copy {
            from: last(&flags, "from"),
            chown: last(&flags, "chown"),
            chmod: last(&flags, "chmod"),
            link: last(&flags, "link").as_deref() == Some("true"),
            parents: last(&flags, "parents").as_deref() == Some("true"),
            excludes: all(&flags, "exclude"),
            checksum: last(&flags, "checksum"),
            keep_git_dir: last(&flags, "keep-git-dir").as_deref() == Some("true"),
            sources,
            dest,
        })
    }

    /// ENV and LABEL: `k=v ...` (quotes respected), or the legacy
    /// `KEY value with spaces` when the first word has no `=`.
    fn name_values(&self, args: &str) -> Result<Vec<KeyValue>, ParseError> {
        let words = split_words(args, self.escape);
        let Some(first) = words.first() else {
            return Err(self.err("needs KEY=VALUE"));
        };
        if !first.contains('=') {
            let Some((key, value)) = args.split_once(char::is_whitespace) else {
                return Err(self.err(format!(
                    "needs a value for `{first}`: {0} KEY=VALUE or {0} KEY VALUE",
                    self.name
                )));
            };
            return Ok(vec![KeyValue {
                key: key.to_string(),
                value: value.trim_start().to_string(),
            }]);
        }
        words
            .into_iter()
            .map(|word| match word.split_once('=') {
                Some(("", _)) => Err(self.err(format!("`{word}` has an empty name"))),
                Some((key, value)) => Ok(KeyValue {
                    key: key.to_string(),
                    value: value.to_string(),
                }),
                None => Err(self.err(format!(
                    "`{word}` has no `=`; write every pair as KEY=VALUE"
                ))),
            })
            .collect()
    }

    fn arg(&self, args: &str) -> Result<Vec<ArgDecl>, ParseError> {
        let words = split_words(args, self.escape);
        if words.is_empty() {
            return Err(self.err("needs a name: ARG NAME[=DEFAULT]"));
        }
        words
            .into_iter()
            .map(|word| {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (word.clone(), None),
                };
                if name.is_empty() {
                    return Err(self.err(format!("`{word}` has an empty name")));
                }
                Ok(ArgDecl { name, default })
            })
            .collect()
    }

    fn some_words(&self, args: &str, what: &str) -> Result<Vec<String>, ParseError> {
        let words = split_words(args, self.escape);
        if words.is_empty() {
            return Err(self.err(format!("needs {what}")));
        }
        Ok(words)
    }

    fn volume(&self, args: &str) -> Result<Vec<String>, ParseError> {
        let list = match json_array(args) {
            Some(list) => list,
            None => args.split_whitespace().map(str::to_string).collect(),
        };
        if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
            return Err(self.err("needs a path (empty paths are not allowed)"));
        }
        Ok(list)
    }

    fn one(&self, args: &str, what: &str) -> Result<String, ParseError> {
        if args.is_empty() {
            return Err(self.err(format!("needs {what}")));
        }
        Ok(args.to_string())
    }

    fn healthcheck(&self, args: &str) -> Result<Healthcheck, ParseError> {
        if args.eq_ignore_ascii_case("none") {
            return Ok(Healthcheck::None);
        }
        let (flags, rest) = self.flags(
            args,
            &[
                ("interval", Kind::Str),
                ("timeout", Kind::Str),
                ("start-period", Kind::Str),
                ("start-interval", Kind::Str),
                ("retries", Kind::Str),
            ],
        )?;
        let (word, command) = match rest.find(char::is_whitespace) {
            Some(at) => (&rest[..at], rest[at..].trim_start()),
            None => (rest, ""),
        };
        if word.eq_ignore_ascii_case("none") {
            return Err(self.err("NONE takes no flags and nothing after it"));
        }
        if !word.eq_ignore_ascii_case("cmd") {
            return Err(self.err("takes NONE or [flags] CMD command"));
        }
        let retries = match last(&flags, "retries") {
            None => None,
            Some(r) => Some(r.parse::<u32>().map_err(|_| {
                self.err(format!(
                    "--retries={r} must be a whole number of at least 0"
                ))
            })?),
        };
        Ok(Healthcheck::Check {
            interval: last(&flags, "interval"),
            timeout: last(&flags, "timeout"),
            start_period: last(&flags, "start-period"),
            start_interval: last(&flags, "start-interval"),
            retries,
            command: self.command(command)?,
        })
    }

    fn onbuild(&self, args: &str) -> Result<Onbuild, ParseError> {
        let keyword = args.split_whitespace().next().unwrap_or("");
        if keyword.is_empty() {
            return Err(self.err("needs an instruction"));
        }
        if ["FROM", "MAINTAINER", "ONBUILD"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
        {
            return Err(self.err(format!(
                "{} is not allowed as an ONBUILD trigger",
                keyword.to_ascii_uppercase()
            )));
        }
        let inner = parse_text(args, Vec::new(), self.line, self.escape, false)?;
        Ok(Onbuild {
            text: args.to_string(),
            inner: Box::new(inner),
        })
    }
}

fn last(flags: &FlagValues, name: &str) -> Option<String> {
    flags
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.last().cloned())
}

fn all(flags: &FlagValues, name: &str) -> Vec<String> {
    flags
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}
