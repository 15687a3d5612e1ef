//! Unit tests of the Containerfile parser and of substitution, each case
//! with its exact expected result; hostile inputs next to a control.

use std::collections::BTreeMap;

use super::heredoc::Heredoc;
use super::instruction::{
    ArgDecl, Command, Copy, From, Healthcheck, Instruction, KeyValue, Network, Source,
};
use super::mount::MountKind;
use super::substitute::{MAX_NESTING, expand_word, expand_words};
use super::{ParseError, parse};

/// The instructions of `text` (which must parse).
fn steps(text: &str) -> Vec<Instruction> {
    parse(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .steps
        .into_iter()
        .map(|s| s.instruction)
        .collect()
}

/// The one instruction after `FROM scratch`.
fn second(text: &str) -> Instruction {
    let mut all = steps(&format!("FROM scratch\n{text}"));
    assert_eq!(all.len(), 2, "{all:?}");
    all.remove(1)
}

fn error(text: &str) -> String {
    parse(text).expect_err("should not parse").to_string()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(text: &str, vars: &BTreeMap<String, String>) -> String {
    expand_word(text, '\\', vars).unwrap().value
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_string(),
    }
}

fn shell(text: &str) -> Command {
    Command::Shell(text.to_string())
}

fn exec(argv: &[&str]) -> Command {
    Command::Exec(argv.iter().map(|s| s.to_string()).collect())
}

#[test]
fn from_with_alias_platform_and_line_numbers() {
    let file =
        parse("# a comment\n\nFROM --platform=linux/arm64 alpine:3.20 AS build\n\nFROM build\n")
            .unwrap();
    assert_eq!(file.steps[0].line, 3);
    assert_eq!(
        file.steps[0].instruction,
        Instruction::From(From {
            platform: Some("linux/arm64".to_string()),
            image: "alpine:3.20".to_string(),
            alias: Some("build".to_string()),
        })
    );
    assert_eq!(file.steps[1].line, 5);
    assert_eq!(
        file.steps[1].instruction,
        Instruction::From(From {
            platform: None,
            image: "build".to_string(),
            alias: None,
        })
    );
    // Lower-case keywords and `as` are accepted, as Docker does.
    assert_eq!(
        steps("from alpine as b")[0],
        Instruction::From(From {
            platform: None,
            image: "alpine".to_string(),
            alias: Some("b".to_string()),
        })
    );
    assert_eq!(
        steps("FROM alpine AS Build.1")[0],
        Instruction::From(From {
            platform: None,
            image: "alpine".to_string(),
            alias: Some("build.1".to_string()),
        })
    );
    assert_eq!(
        error("FROM alpine AS 1st"),
        "Containerfile:1: FROM stage name `1st` is not valid; use a letter then letters, digits, _ . -"
    );
    assert_eq!(
        error("FROM alpine AS"),
        "Containerfile:1: FROM takes an image and an optional AS NAME: FROM IMAGE [AS NAME]"
    );
}

#[test]
fn empty_file_and_missing_from_are_errors() {
    assert_eq!(
        error(""),
        "Containerfile: the file holds no instructions; start it with FROM IMAGE"
    );
    assert_eq!(
        error("# only a comment\n\n"),
        "Containerfile: the file holds no instructions; start it with FROM IMAGE"
    );
    assert_eq!(
        error("ARG A\n"),
        "Containerfile: the file has no FROM; add FROM IMAGE after the ARG lines"
    );
    assert_eq!(
        error("ARG A\nRUN true\nFROM x\n"),
        "Containerfile:2: RUN comes before the first FROM; only ARG may precede FROM"
    );
}

#[test]
fn arg_before_from() {
    assert_eq!(
        steps("ARG VERSION=3.20\nARG A B=\"x y\"\nFROM alpine:${VERSION}\n"),
        vec![
            Instruction::Arg(vec![ArgDecl {
                name: "VERSION".to_string(),
                default: Some("3.20".to_string()),
            }]),
            Instruction::Arg(vec![
                ArgDecl {
                    name: "A".to_string(),
                    default: None,
                },
                ArgDecl {
                    name: "B".to_string(),
                    default: Some("\"x y\"".to_string()),
                },
            ]),
            Instruction::From(From {
                platform: None,
                image: "alpine:${VERSION}".to_string(),
                alias: None,
            }),
        ]
    );
}

#[test]
fn unknown_instruction_names_it_and_its_line() {
    assert_eq!(
        error("FROM x\n\nRUN a \\\n  b\nFROB y\n"),
        "Containerfile:5: unknown instruction `FROB`; the instructions are FROM, RUN, CMD, \
         ENTRYPOINT, SHELL, COPY, ADD, ENV, ARG, LABEL, EXPOSE, VOLUME, USER, WORKDIR, \
         STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER"
    );
}

#[test]
fn continuation_with_comments_and_empty_lines() {
    let file = parse(
        "FROM x\nRUN apt-get update && \\\n# a comment in the middle\n\n   \n    apt-get install -y \\  \n  # indented comment\n  curl\nUSER me\n",
    )
    .unwrap();
    assert_eq!(file.steps[1].line, 2);
    assert_eq!(
        file.steps[1].text,
        "RUN apt-get update &&     apt-get install -y   curl"
    );
    let Instruction::Run(run) = &file.steps[1].instruction else {
        panic!("{:?}", file.steps[1]);
    };
    assert_eq!(
        run.command,
        shell("apt-get update &&     apt-get install -y   curl")
    );
    assert_eq!(file.steps[2].line, 9);
    assert_eq!(
        file.steps[2].instruction,
        Instruction::User("me".to_string())
    );
}

#[test]
fn escape_directive_backtick_for_windows_paths() {
    let file =
        parse("# escape=`\nFROM x\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  && echo done\n")
            .unwrap();
    assert_eq!(file.directives.escape, '`');
    let Instruction::Copy(copy) = &file.steps[1].instruction else {
        panic!("{:?}", file.steps[1]);
    };
    // With the backtick as escape, a trailing `\` is a path, not a continuation.
    assert_eq!(copy.dest, "c:\\");
    assert_eq!(copy.sources, vec![Source::Path("testfile.txt".to_string())]);
    assert_eq!(
        file.steps[2].instruction,
        Instruction::Run(super::instruction::Run {
            mounts: vec![],
            network: None,
            security: None,
            command: shell("dir c:\\   && echo done"),
            heredocs: vec![],
        })
    );
    // Control: without the directive the same `\` joins the next line.
    let plain = parse("FROM x\nCOPY testfile.txt c:\\\nRUN dir\n").unwrap();
    assert_eq!(plain.steps.len(), 2);
    assert_eq!(plain.steps[1].text, "COPY testfile.txt c:RUN dir");
}

#[test]
fn directives_only_at_the_top() {
    let file =
        parse("# SYNTAX = docker/dockerfile:1\n#escape=`\n# check=skip=all\nFROM x\n").unwrap();
    assert_eq!(file.directives.escape, '`');
    assert_eq!(
        file.directives.syntax.as_deref(),
        Some("docker/dockerfile:1")
    );
    assert_eq!(file.directives.check.as_deref(), Some("skip=all"));
    // After a blank line, a comment or an unknown directive, it is a comment.
    for text in [
        "\n# escape=`\nFROM x\n",
        "# hello\n# escape=`\nFROM x\n",
        "# unknown=1\n# escape=`\nFROM x\n",
        "FROM x\n# escape=`\n",
    ] {
        assert_eq!(parse(text).unwrap().directives.escape, '\\', "{text:?}");
    }
    assert_eq!(
        error("# escape=\\\n# escape=`\nFROM x\n"),
        "Containerfile:2: only one `escape` parser directive may be given; remove this one"
    );
    assert_eq!(
        error("# escape=x\nFROM x\n"),
        "Containerfile:1: escape directive `x` is not valid; use \\ or `"
    );
}

#[test]
fn env_with_and_without_equals() {
    assert_eq!(
        second(r#"ENV A=1 B="two words" C=say\ \"hi\" D='$x'"#),
        Instruction::Env(vec![
            kv("A", "1"),
            kv("B", "\"two words\""),
            kv("C", r#"say\ \"hi\""#),
            kv("D", "'$x'"),
        ])
    );
    assert_eq!(
        second("ENV MY_NAME John Doe  is here"),
        Instruction::Env(vec![kv("MY_NAME", "John Doe  is here")])
    );
    // What the executor gets once the words are expanded.
    let none = vars(&[("x", "X")]);
    assert_eq!(word("\"two words\"", &none), "two words");
    assert_eq!(word(r#"say\ \"hi\""#, &none), "say \"hi\"");
    assert_eq!(word("'$x'", &none), "$x");
    assert_eq!(word("\"$x\"", &none), "X");
    assert_eq!(
        error("FROM x\nENV A=1 B\n"),
        "Containerfile:2: ENV `B` has no `=`; write every pair as KEY=VALUE"
    );
    assert_eq!(
        error("FROM x\nENV ONLY\n"),
        "Containerfile:2: ENV needs a value for `ONLY`: ENV KEY=VALUE or ENV KEY VALUE"
    );
    assert_eq!(
        second("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0"),
        Instruction::Label(vec![
            kv("\"com.example.vendor\"", "\"ACME Inc\""),
            kv("version", "1.0"),
        ])
    );
}

#[test]
fn exec_and_shell_form() {
    assert_eq!(
        second(r#"CMD ["echo", "a b"]"#),
        Instruction::Cmd(exec(&["echo", "a b"]))
    );
    assert_eq!(second("CMD echo a b"), Instruction::Cmd(shell("echo a b")));
    assert_eq!(
        second(r#"ENTRYPOINT [ "/bin/app" , "--x" ]"#),
        Instruction::Entrypoint(exec(&["/bin/app", "--x"]))
    );
    // Malformed JSON (single quotes, trailing comma, non-strings) is shell form.
    for text in [
        "['echo', 'hi']",
        r#"["echo", "hi",]"#,
        r#"["echo", 1]"#,
        r#"["echo""#,
    ] {
        assert_eq!(
            second(&format!("CMD {text}")),
            Instruction::Cmd(shell(text)),
            "{text}"
        );
    }
    assert_eq!(
        second(r#"SHELL ["powershell", "-command"]"#),
        Instruction::Shell(vec!["powershell".to_string(), "-command".to_string()])
    );
    assert_eq!(
        error("FROM x\nSHELL /bin/sh -c\n"),
        r#"Containerfile:2: SHELL takes the JSON form only: SHELL ["/bin/sh", "-c"]"#
    );
    assert_eq!(
        second(r#"RUN ["/bin/sh", "-c", "echo $HOME"]"#),
        Instruction::Run(super::instruction::Run {
            mounts: vec![],
            network: None,
            security: None,
            command: exec(&["/bin/sh", "-c", "echo $HOME"]),
            heredocs: vec![],
        })
    );
}

fn heredoc(name: &str, body: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.to_string(),
        body: body.to_string(),
        expand,
        chomp,
    }
}

fn run_of(instruction: Instruction) -> super::instruction::Run {
    match instruction {
        Instruction::Run(run) => run,
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredocs_plain_chomped_quoted_and_two() {
    let file = parse(
        "FROM x\nRUN <<EOF\napt-get update\n  echo $HOME\nEOF\nRUN <<-EOT bash\n\tone\n\t\ttwo\n\tEOT\nRUN <<'EOF'\necho $HOME\nEOF\nRUN cat <<A > a && cat <<\"B\" > b\nfirst\nA\nsecond $x\nB\nUSER u\n",
    )
    .unwrap();
    let lines: Vec<usize> = file.steps.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![1, 2, 6, 10, 13, 18]);
    let mut runs = file.steps[1..5]
        .iter()
        .map(|s| run_of(s.instruction.clone()));
    let plain = runs.next().unwrap();
    assert_eq!(plain.command, shell("<<EOF"));
    assert_eq!(
        plain.heredocs,
        vec![heredoc(
            "EOF",
            "apt-get update\n  echo $HOME\n",
            true,
            false
        )]
    );
    let chomped = runs.next().unwrap();
    assert_eq!(chomped.command, shell("<<-EOT bash"));
    assert_eq!(
        chomped.heredocs,
        vec![heredoc("EOT", "one\ntwo\n", true, true)]
    );
    let quoted = runs.next().unwrap();
    assert_eq!(
        quoted.heredocs,
        vec![heredoc("EOF", "echo $HOME\n", false, false)]
    );
    let two = runs.next().unwrap();
    assert_eq!(two.command, shell("cat <<A > a && cat <<\"B\" > b"));
    assert_eq!(
        two.heredocs,
        vec![
            heredoc("A", "first\n", true, false),
            heredoc("B", "second $x\n", false, false),
        ]
    );
    assert_eq!(
        file.steps[5].instruction,
        Instruction::User("u".to_string())
    );
}

#[test]
fn heredoc_edges() {
    // Not closed: an error naming the delimiter, at the instruction's line.
    assert_eq!(
        error("FROM x\nRUN <<EOF\necho\n"),
        "Containerfile:2: the here-document <<EOF is not closed; end it with a line holding only EOF"
    );
    // A quoted `<<EOF` is not a here-document (control: the next line is an instruction).
    assert_eq!(steps("FROM x\nRUN echo \"<<EOF\"\nUSER u\n").len(), 3);
    // Without `-`, an indented delimiter does not close it.
    assert_eq!(
        run_of(second("RUN <<EOF\n\tEOF\nEOF")).heredocs,
        vec![heredoc("EOF", "\tEOF\n", true, false)]
    );
    // Other instructions do not take here-documents.
    assert_eq!(
        error("FROM x\nENV A <<EOF\nB\nEOF\n"),
        "Containerfile:3: unknown instruction `B`; the instructions are FROM, RUN, CMD, \
         ENTRYPOINT, SHELL, COPY, ADD, ENV, ARG, LABEL, EXPOSE, VOLUME, USER, WORKDIR, \
         STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER"
    );
}

#[test]
fn copy_flags_json_and_heredoc() {
    assert_eq!(
        second(
            "COPY --from=build --chown=1000:1000 --chmod=0755 --link --exclude=*.md --exclude=.git a b /dst/"
        ),
        Instruction::Copy(Copy {
            from: Some("build".to_string()),
            chown: Some("1000:1000".to_string()),
            chmod: Some("0755".to_string()),
            link: true,
            parents: false,
            excludes: vec!["*.md".to_string(), ".git".to_string()],
            checksum: None,
            keep_git_dir: false,
            sources: vec![Source::Path("a".to_string()), Source::Path("b".to_string())],
            dest: "/dst/".to_string(),
        })
    );
    let Instruction::Add(add) =
        second(r#"ADD --checksum=sha256:abc --link=false ["a b", "/d e/"]"#)
    else {
        panic!();
    };
    assert_eq!(add.checksum.as_deref(), Some("sha256:abc"));
    assert!(!add.link);
    assert_eq!(add.sources, vec![Source::Path("a b".to_string())]);
    assert_eq!(add.dest, "/d e/");
    let Instruction::Copy(copy) = second("COPY <<EOF /etc/motd\nhello $USER\nEOF") else {
        panic!();
    };
    assert_eq!(
        copy.sources,
        vec![Source::Heredoc(heredoc(
            "EOF",
            "hello $USER\n",
            true,
            false
        ))]
    );
    assert_eq!(copy.dest, "/etc/motd");
    assert_eq!(
        error("FROM x\n\n\n\n\n\nCOPY onlyone\n"),
        "Containerfile:7: COPY needs a source and a destination"
    );
    assert_eq!(
        error("FROM x\nCOPY --checksum=sha256:x a b\n"),
        "Containerfile:2: COPY does not take --checksum; it takes --from, --chown, --chmod, --link, --parents, --exclude"
    );
    assert_eq!(
        error("FROM x\nCOPY --from a b\n"),
        "Containerfile:2: COPY --from needs a value (--from=...)"
    );
}

#[test]
fn run_mounts_network_security() {
    let run = run_of(second(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked \\\n    --mount=type=secret,id=token,required \\\n    --mount=target=/src,from=build,source=/out,ro \\\n    --network=none --security=insecure pip install x",
    ));
    assert_eq!(run.mounts.len(), 3);
    let cache = &run.mounts[0];
    assert_eq!(cache.kind, MountKind::Cache);
    assert_eq!(cache.target.as_deref(), Some("/root/.cache"));
    assert_eq!(cache.id.as_deref(), Some("pip"));
    assert_eq!(cache.sharing.as_deref(), Some("locked"));
    let secret = &run.mounts[1];
    assert_eq!(secret.kind, MountKind::Secret);
    assert_eq!(secret.id.as_deref(), Some("token"));
    assert_eq!(secret.required, Some(true));
    assert_eq!(secret.target, None);
    let bind = &run.mounts[2];
    assert_eq!(bind.kind, MountKind::Bind);
    assert_eq!(bind.from.as_deref(), Some("build"));
    assert_eq!(bind.source.as_deref(), Some("/out"));
    assert_eq!(bind.readonly, Some(true));
    assert_eq!(run.network, Some(Network::None));
    assert_eq!(run.command, shell("pip install x"));
    assert_eq!(
        error("FROM x\nRUN --mount=type=cache true\n"),
        "Containerfile:2: RUN --mount=type=cache: needs target=PATH"
    );
    assert_eq!(
        error("FROM x\nRUN --mount=type=nfs,target=/a true\n"),
        "Containerfile:2: RUN --mount=type=nfs,target=/a: type=nfs is not known; use bind, cache, tmpfs, secret or ssh"
    );
    assert_eq!(
        error("FROM x\nRUN --network=bridge true\n"),
        "Containerfile:2: RUN --network=bridge is not known; use none, default or host"
    );
}

#[test]
fn healthcheck_onbuild_and_simple_instructions() {
    assert_eq!(
        second("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        second(
            "HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1"
        ),
        Instruction::Healthcheck(Healthcheck::Check {
            interval: Some("5m".to_string()),
            timeout: Some("3s".to_string()),
            start_period: None,
            start_interval: None,
            retries: Some(3),
            command: shell("curl -f http://localhost/ || exit 1"),
        })
    );
    assert_eq!(
        error("FROM x\nHEALTHCHECK --retries=x CMD true\n"),
        "Containerfile:2: HEALTHCHECK --retries=x must be a whole number of at least 0"
    );
    let Instruction::Onbuild(onbuild) = second("ONBUILD COPY . /app/src") else {
        panic!();
    };
    assert_eq!(onbuild.text, "COPY . /app/src");
    let Instruction::Copy(copy) = *onbuild.inner else {
        panic!();
    };
    assert_eq!(copy.dest, "/app/src");
    assert_eq!(
        error("FROM x\nONBUILD ONBUILD RUN true\n"),
        "Containerfile:2: ONBUILD ONBUILD is not allowed as an ONBUILD trigger"
    );
    assert_eq!(
        error("FROM x\nONBUILD FROM y\n"),
        "Containerfile:2: ONBUILD FROM is not allowed as an ONBUILD trigger"
    );
    assert_eq!(
        second("EXPOSE 80/tcp 53/udp"),
        Instruction::Expose(vec!["80/tcp".to_string(), "53/udp".to_string()])
    );
    assert_eq!(
        second(r#"VOLUME ["/data", "/logs"]"#),
        Instruction::Volume(vec!["/data".to_string(), "/logs".to_string()])
    );
    assert_eq!(
        second("VOLUME /a /b"),
        Instruction::Volume(vec!["/a".to_string(), "/b".to_string()])
    );
    assert_eq!(
        second("WORKDIR /a b"),
        Instruction::Workdir("/a b".to_string())
    );
    assert_eq!(
        second("STOPSIGNAL SIGTERM"),
        Instruction::StopSignal("SIGTERM".to_string())
    );
    assert_eq!(
        second("MAINTAINER me <me@x>"),
        Instruction::Maintainer("me <me@x>".to_string())
    );
    assert_eq!(
        error("FROM x\nWORKDIR\n"),
        "Containerfile:2: WORKDIR needs a directory"
    );
}

#[test]
fn substitution_forms() {
    let env = vars(&[("A", "a"), ("EMPTY", ""), ("SP", "x  y")]);
    let cases = [
        ("$A", "a"),
        ("${A}b", "ab"),
        ("$Ab", ""),
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${UNSET-def}", "def"),
        ("${A:-def}", "a"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${A}x}", "ax"),
        ("\\$A", "$A"),
        ("\\${A}", "${A}"),
        ("'$A'", "$A"),
        ("\"$A\"", "a"),
        ("\"\\$A\"", "$A"),
        ("\"a\\b\"", "a\\b"),
        ("a$", "a$"),
        ("$ a", "$ a"),
        ("${A:?must be set}", "a"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input, &env), expected, "{input}");
    }
    // The backtick escape.
    assert_eq!(expand_word("`$A", '`', &env).unwrap().value, "$A");
    assert_eq!(expand_word("\\$A", '`', &env).unwrap().value, "\\a");
    // Errors.
    let err = |text: &str| expand_word(text, '\\', &env).unwrap_err().to_string();
    assert_eq!(err("${UNSET:?needs a value}"), "UNSET: needs a value");
    // Without the colon, set-but-empty is set: no error.
    assert_eq!(word("${EMPTY?}", &env), "");
    assert_eq!(err("${UNSET?}"), "UNSET: is not set");
    assert_eq!(err("${A"), "missing `}` in a ${...}");
    assert_eq!(err("${A:-x"), "missing `}` in a ${...}");
    assert_eq!(err("${}"), "bad substitution: ${...} needs a variable name");
    assert_eq!(
        err("${A#x}"),
        "bad substitution: modifier `#` in ${A...} is not supported; use :- - :+ + :? ?"
    );
    assert_eq!(
        err("'open"),
        "a single quote is not closed; add the closing '"
    );
    assert_eq!(
        err("\"open"),
        "a double quote is not closed; add the closing \""
    );
}

#[test]
fn substitution_reports_used_variables() {
    let env = vars(&[("A", "a"), ("B", "b")]);
    let out = expand_word("$A-${C:-$B}-'$D'-\\$E", '\\', &env).unwrap();
    assert_eq!(out.value, "a-b-$D-$E");
    let used: Vec<&str> = out.used.iter().map(String::as_str).collect();
    assert_eq!(used, vec!["A", "B", "C"]);
}

#[test]
fn substitution_into_words() {
    let env = vars(&[("PORTS", "80  443"), ("ONE", "a b")]);
    let words = expand_words("$PORTS \"$ONE\" '' x", '\\', &env).unwrap();
    assert_eq!(words.value, vec!["80", "443", "a b", "", "x"]);
}

#[test]
fn hostile_nesting_is_refused_not_a_stack_overflow() {
    let env = vars(&[]);
    let nested = |n: usize| format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
    // Control: at the limit it expands.
    assert_eq!(word(&nested(MAX_NESTING), &env), "x");
    assert_eq!(
        expand_word(&nested(MAX_NESTING + 1), '\\', &env)
            .unwrap_err()
            .to_string(),
        "${...} nests deeper than 32 levels; simplify the expression"
    );
    assert!(expand_word(&nested(100_000), '\\', &env).is_err());
}

#[test]
fn hostile_long_lines_and_many_continuations() {
    let long = "a".repeat(1_000_000);
    let Instruction::Run(run) = second(&format!("RUN echo {long}")) else {
        panic!();
    };
    assert_eq!(run.command, shell(&format!("echo {long}")));
    let continued = format!("RUN {}end", "x \\\n".repeat(100_000));
    let Instruction::Run(run) = second(&continued) else {
        panic!();
    };
    assert_eq!(run.command, shell(&format!("{}end", "x ".repeat(100_000))));
    let err: ParseError = parse(&format!("FROM x\n{}\n", "[".repeat(100_000))).unwrap_err();
    assert_eq!(err.line, 2);
    // Deeply nested JSON is not exec form (serde_json's depth limit), and
    // does not overflow the stack; control: a flat array is exec form.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        second(&format!("CMD {deep}")),
        Instruction::Cmd(shell(&deep))
    );
    assert_eq!(second("CMD [\"a\"]"), Instruction::Cmd(exec(&["a"])));
    // Many heredoc markers without bodies: an error, not a hang or panic.
    let many = format!("FROM x\nRUN {}\n", "<<E ".repeat(10_000));
    assert_eq!(
        parse(&many).unwrap_err().to_string(),
        "Containerfile:2: the here-document <<E is not closed; end it with a line holding only E"
    );
}

#[test]
fn crlf_bom_and_which_instructions_expand() {
    let file = parse("\u{feff}# escape=`\r\nFROM x\r\nRUN a `\r\n  b\r\nWORKDIR /w\r\n").unwrap();
    assert_eq!(file.directives.escape, '`');
    assert_eq!(file.steps[1].text, "RUN a   b");
    assert_eq!(
        file.steps[2].instruction,
        Instruction::Workdir("/w".to_string())
    );
    let expanding: Vec<&str> = file
        .steps
        .iter()
        .filter(|s| s.instruction.expands_variables())
        .map(|s| s.instruction.keyword())
        .collect();
    assert_eq!(expanding, vec!["FROM", "WORKDIR"]);
}
