//! Unit tests of the build context: ignore rules and file selection.

use super::ignore::Ignore;

fn rules(text: &str) -> Ignore {
    Ignore::parse(text, None).expect("the test's patterns parse")
}

/// The paths of `paths` that `text` excludes.
fn excluded<'a>(text: &str, paths: &[&'a str]) -> Vec<&'a str> {
    let ignore = rules(text);
    paths
        .iter()
        .copied()
        .filter(|p| ignore.is_excluded(p))
        .collect()
}

#[test]
fn docker_example_one_level_temp() {
    // Docker's documentation: `*/temp*` excludes /somedir/temporary.txt
    // and /somedir/temp, not /temp nor deeper ones.
    let paths = [
        "somedir/temporary.txt",
        "somedir/temp",
        "temp",
        "a/b/temp",
        "somedir/other",
    ];
    assert_eq!(
        excluded("*/temp*", &paths),
        ["somedir/temporary.txt", "somedir/temp"]
    );
}

#[test]
fn docker_example_two_levels_temp() {
    let paths = [
        "somedir/subdir/temporary.txt",
        "somedir/temp",
        "a/b/temp/x",
        "a/b/c",
    ];
    assert_eq!(
        excluded("*/*/temp*", &paths),
        ["somedir/subdir/temporary.txt", "a/b/temp/x"]
    );
}

#[test]
fn docker_example_question_mark() {
    let paths = ["tempa", "tempb", "temp", "tempab", "temp/", "x/tempa"];
    assert_eq!(excluded("temp?", &paths), ["tempa", "tempb"]);
}

#[test]
fn docker_example_double_star() {
    let paths = ["a.go", "x/a.go", "x/y/z/b.go", "a.got", "x/a.c", "go"];
    assert_eq!(
        excluded("**/*.go", &paths),
        ["a.go", "x/a.go", "x/y/z/b.go"]
    );
}

#[test]
fn docker_example_exceptions_last_match_wins() {
    let paths = [
        "a.md",
        "README.md",
        "README-secret.md",
        "README-x.md",
        "x.txt",
    ];
    assert_eq!(excluded("*.md\n!README*.md", &paths), ["a.md"]);
    assert_eq!(
        excluded("*.md\n!README*.md\nREADME-secret.md", &paths),
        ["a.md", "README-secret.md"]
    );
    // Order matters: the exclusion first, then the exception, keeps it.
    assert_eq!(
        excluded("*.md\nREADME-secret.md\n!README*.md", &paths),
        ["a.md"]
    );
}

#[test]
fn parent_directory_match_excludes_everything_below() {
    let paths = ["build", "build/out/x.o", "builder/x", "src/build"];
    assert_eq!(excluded("build", &paths), ["build", "build/out/x.o"]);
}

#[test]
fn exception_under_excluded_directory() {
    let text = "docs\n!docs/keep.md";
    let paths = ["docs", "docs/a.md", "docs/keep.md", "docs/sub/keep.md"];
    assert_eq!(
        excluded(text, &paths),
        ["docs", "docs/a.md", "docs/sub/keep.md"]
    );
    let ignore = rules(text);
    assert!(ignore.may_contain_exceptions("docs"));
    // Control: an exception elsewhere gives no reason to descend.
    assert!(!ignore.may_contain_exceptions("other"));
    assert!(!rules("docs\n!src/keep.md").may_contain_exceptions("docs"));
    assert!(!rules("docs").may_contain_exceptions("docs"));
    // Wildcard exceptions that could reach inside.
    assert!(rules("docs\n!**/keep.md").may_contain_exceptions("docs/deep"));
    assert!(rules("docs\n!d*/x").may_contain_exceptions("docs"));
    assert!(!rules("docs\n!e*/x").may_contain_exceptions("docs"));
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let ignore = rules("# a comment\n\n   \n  a.txt  \n#b.txt\n \t# not a comment\n");
    assert_eq!(ignore.patterns(), ["a.txt", "# not a comment"]);
    assert!(ignore.is_excluded("a.txt"));
    assert!(!ignore.is_excluded("b.txt"));
    assert!(!ignore.is_excluded("#b.txt"));
    assert!(ignore.is_excluded("# not a comment"));
}

#[test]
fn patterns_are_cleaned_and_made_relative() {
    let ignore = rules("/abs\n./dot\ndir/\na//b/./c/../d\n!/keep/\n\u{feff}x");
    assert_eq!(
        ignore.patterns(),
        ["abs", "dot", "dir", "a/b/d", "!keep", "\u{feff}x"]
    );
    for p in ["abs", "dot", "dir", "dir/f", "a/b/d"] {
        assert!(ignore.is_excluded(p), "{p}");
    }
    for p in ["x/abs", "x/dot", "directory", "a/b/c/d", "keep"] {
        assert!(!ignore.is_excluded(p), "{p}");
    }
    // A BOM is dropped on the first line only.
    assert_eq!(rules("\u{feff}bom").patterns(), ["bom"]);
}

#[test]
fn escaped_star_is_literal() {
    assert_eq!(excluded(r"a\*b", &["a*b", "axb", "ab"]), ["a*b"]);
    assert_eq!(excluded(r"q\?", &["q?", "qx"]), ["q?"]);
}

#[test]
fn character_classes() {
    let paths = ["f1", "f5", "fa", "f/", "f-"];
    assert_eq!(excluded("f[0-4]", &paths), ["f1"]);
    assert_eq!(excluded("f[4-4]", &["f4", "f3"]), ["f4"]);
    assert_eq!(excluded("f[^0-4]", &paths), ["f5", "fa", "f-"]);
    assert_eq!(excluded(r"f[\-]", &paths), ["f-"]);
    // Go's grammar: `!` does not negate, it is a member.
    assert_eq!(excluded("x[!a]", &["x!", "xa", "xb"]), ["x!", "xa"]);
}

#[test]
fn stars() {
    let paths = ["a", "a/b", "a/b/c.txt", "c.txt", "z/c.txt"];
    assert_eq!(excluded("*", &paths), paths);
    assert_eq!(excluded("a/**", &paths), ["a/b", "a/b/c.txt"]);
    assert_eq!(excluded("*.txt", &paths), ["c.txt"]);
    assert_eq!(excluded("a/**/c.txt", &paths), ["a/b/c.txt"]);
    assert_eq!(excluded("**", &paths), paths);
}

#[test]
fn unterminated_class_names_the_line() {
    let err = Ignore::parse(
        "ok\n# c\n\nbad[ab\n",
        Some(std::path::Path::new("/ctx/.dockerignore")),
    )
    .unwrap_err();
    assert!(err.contains("/ctx/.dockerignore, line 4"), "{err}");
    assert!(err.contains("`bad[ab`"), "{err}");
    assert!(err.contains("unterminated"), "{err}");
    // Control: the terminated class parses.
    assert!(Ignore::parse("ok\n# c\n\nbad[ab]\n", None).is_ok());
    for bad in ["[]", "a[", r"a\", "[a-]", "!", "[z-a]"] {
        assert!(Ignore::parse(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn containerignore_wins_over_dockerignore() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "docker\n").unwrap();
    let ignore = Ignore::load(dir.path(), None).unwrap();
    assert_eq!(ignore.patterns(), ["docker"]);
    std::fs::write(dir.path().join(".containerignore"), "container\n").unwrap();
    let ignore = Ignore::load(dir.path(), None).unwrap();
    assert_eq!(ignore.patterns(), ["container"]);
    assert_eq!(
        ignore.source(),
        Some(dir.path().join(".containerignore").as_path())
    );
    // The Containerfile's own ignore file wins over both.
    let file = dir.path().join("Special.file");
    let ignore = Ignore::load(dir.path(), Some(&file)).unwrap();
    assert_eq!(ignore.patterns(), ["container"]);
    std::fs::write(dir.path().join("Special.file.dockerignore"), "own-docker\n").unwrap();
    let ignore = Ignore::load(dir.path(), Some(&file)).unwrap();
    assert_eq!(ignore.patterns(), ["own-docker"]);
    std::fs::write(dir.path().join("Special.file.containerignore"), "own\n").unwrap();
    let ignore = Ignore::load(dir.path(), Some(&file)).unwrap();
    assert_eq!(ignore.patterns(), ["own"]);
    // No file at all: nothing excluded.
    let empty = tempfile::tempdir().unwrap();
    let ignore = Ignore::load(empty.path(), None).unwrap();
    assert!(ignore.patterns().is_empty());
    assert!(!ignore.is_excluded("anything"));
}

mod walk {
    use super::rules;
    use crate::build::context::ignore::Ignore;
    use crate::build::context::walk::{Context, Kind, Selection};
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::Path;

    /// A context with: a.txt b.txt c.md dir/{x/file, y/file, y/other, z}
    /// docs/{a.md, keep.md}.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["dir/x", "dir/y", "docs"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        for f in [
            "a.txt",
            "b.txt",
            "c.md",
            "dir/x/file",
            "dir/y/file",
            "dir/y/other",
            "dir/z",
            "docs/a.md",
            "docs/keep.md",
        ] {
            std::fs::write(p.join(f), f).unwrap();
        }
        dir
    }

    fn paths(s: &Selection) -> Vec<String> {
        s.entries
            .iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect()
    }

    fn select(ctx: &Path, source: &str, ignore: &Ignore) -> Result<Selection, String> {
        Context::open(ctx).unwrap().select(source, ignore)
    }

    #[test]
    fn whole_context_sorted_with_ignored_left_out() {
        let dir = tree();
        let all = select(dir.path(), ".", &Ignore::default()).unwrap();
        assert_eq!(all.matched, [Path::new(".")]);
        assert_eq!(
            paths(&all),
            [
                ".",
                "a.txt",
                "b.txt",
                "c.md",
                "dir",
                "dir/x",
                "dir/x/file",
                "dir/y",
                "dir/y/file",
                "dir/y/other",
                "dir/z",
                "docs",
                "docs/a.md",
                "docs/keep.md"
            ]
        );
        let some = select(dir.path(), ".", &rules("*.md\ndir/y\n")).unwrap();
        assert_eq!(
            paths(&some),
            [
                ".",
                "a.txt",
                "b.txt",
                "dir",
                "dir/x",
                "dir/x/file",
                "dir/z",
                "docs",
                "docs/a.md",
                "docs/keep.md"
            ]
        );
        // `*` stays in one directory level: `**/*.md` reaches docs/.
        let deep = select(dir.path(), ".", &rules("**/*.md\n")).unwrap();
        assert!(!paths(&deep).iter().any(|p| p.ends_with(".md")));
        assert!(paths(&deep).contains(&"docs".to_string()));
        // `/`, `./` and `a/..` all name the root.
        for root in ["/", "./", "dir/.."] {
            assert_eq!(
                paths(&select(dir.path(), root, &Ignore::default()).unwrap()),
                paths(&all)
            );
        }
    }

    #[test]
    fn sorted_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b", "a-b", "B", "a.b", "_"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b"), "").unwrap();
        let all = select(dir.path(), ".", &Ignore::default()).unwrap();
        assert_eq!(paths(&all), [".", "B", "_", "a", "a-b", "a.b", "a/b", "b"]);
    }

    #[test]
    fn exception_under_excluded_directory_is_listed() {
        let dir = tree();
        let s = select(dir.path(), ".", &rules("docs\n!docs/keep.md")).unwrap();
        assert!(paths(&s).contains(&"docs/keep.md".to_string()));
        assert!(paths(&s).contains(&"docs".to_string()));
        assert!(!paths(&s).contains(&"docs/a.md".to_string()));
        // Control: without the exception, docs is gone entirely.
        let s = select(dir.path(), ".", &rules("docs")).unwrap();
        assert!(!paths(&s).iter().any(|p| p.starts_with("docs")));
        // Naming the kept file directly also works.
        let s = select(dir.path(), "docs/keep.md", &rules("docs\n!docs/keep.md")).unwrap();
        assert_eq!(paths(&s), ["docs/keep.md"]);
        let e = select(dir.path(), "docs/a.md", &rules("docs\n!docs/keep.md")).unwrap_err();
        assert!(e.contains("no such file or directory"), "{e}");
    }

    #[test]
    fn metadata_of_entries() {
        let dir = tree();
        let f = dir.path().join("a.txt");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4751)).unwrap();
        let s = select(dir.path(), "a.txt", &Ignore::default()).unwrap();
        assert_eq!(s.matched, [Path::new("a.txt")]);
        let e = &s.entries[0];
        let md = std::fs::symlink_metadata(&f).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(e.kind, Kind::File);
        assert_eq!(e.mode, 0o4751);
        assert_eq!(e.size, 5);
        assert_eq!((e.uid, e.gid), (md.uid(), md.gid()));
        assert_eq!(
            (e.mtime_sec, e.mtime_nsec as i64),
            (md.mtime(), md.mtime_nsec())
        );
        let d = select(dir.path(), "dir/x", &Ignore::default()).unwrap();
        assert_eq!(d.entries[0].kind, Kind::Dir);
        assert_eq!(d.entries[0].size, 0);
        assert_eq!(paths(&d), ["dir/x", "dir/x/file"]);
    }

    #[test]
    fn symlink_to_etc_is_an_entry_never_followed() {
        let dir = tree();
        symlink("/etc", dir.path().join("etc")).unwrap();
        symlink("/etc/passwd", dir.path().join("pw")).unwrap();
        let all = select(dir.path(), ".", &Ignore::default()).unwrap();
        let links: Vec<_> = all
            .entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Symlink(_)))
            .map(|e| {
                (
                    e.path.to_string_lossy().into_owned(),
                    e.kind.clone(),
                    e.size,
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                ("etc".to_string(), Kind::Symlink(b"/etc".to_vec()), 4),
                ("pw".to_string(), Kind::Symlink(b"/etc/passwd".to_vec()), 11)
            ]
        );
        assert!(!paths(&all).iter().any(|p| p.starts_with("etc/")));
        // Naming the link gives the link; going through it is refused.
        let s = select(dir.path(), "etc", &Ignore::default()).unwrap();
        assert_eq!(paths(&s), ["etc"]);
        let e = select(dir.path(), "etc/passwd", &Ignore::default()).unwrap_err();
        assert!(e.contains("etc is a symlink"), "{e}");
        // A wildcard does not go through it either.
        let s = select(dir.path(), "*/passwd", &Ignore::default());
        assert!(s.is_err(), "{s:?}");
        // Control: a real directory of the same shape is gone through.
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/passwd"), "").unwrap();
        let s = select(dir.path(), "*/passwd", &Ignore::default()).unwrap();
        assert_eq!(paths(&s), ["real/passwd"]);
        assert_eq!(
            paths(&select(dir.path(), "real/passwd", &Ignore::default()).unwrap()),
            ["real/passwd"]
        );
    }

    #[test]
    fn sources_outside_the_context_are_refused() {
        let dir = tree();
        for bad in ["../x", "..", "dir/../../a.txt", "/../a.txt"] {
            let e = select(dir.path(), bad, &Ignore::default()).unwrap_err();
            assert!(e.contains("outside the build context"), "{bad}: {e}");
        }
        // Control: `..` that stays inside is fine, and `/` is the context root.
        for good in ["dir/../a.txt", "/a.txt", "./a.txt"] {
            let s = select(dir.path(), good, &Ignore::default()).unwrap();
            assert_eq!(paths(&s), ["a.txt"], "{good}");
        }
    }

    #[test]
    fn wildcard_sources() {
        let dir = tree();
        let s = select(dir.path(), "*.txt", &Ignore::default()).unwrap();
        assert_eq!(s.matched, [Path::new("a.txt"), Path::new("b.txt")]);
        assert_eq!(paths(&s), ["a.txt", "b.txt"]);
        let s = select(dir.path(), "dir/*/file", &Ignore::default()).unwrap();
        assert_eq!(paths(&s), ["dir/x/file", "dir/y/file"]);
        let s = select(dir.path(), "dir/*", &Ignore::default()).unwrap();
        assert_eq!(
            s.matched,
            [Path::new("dir/x"), Path::new("dir/y"), Path::new("dir/z")]
        );
        assert_eq!(
            paths(&s),
            [
                "dir/x",
                "dir/x/file",
                "dir/y",
                "dir/y/file",
                "dir/y/other",
                "dir/z"
            ]
        );
        // Ignored files are not matched.
        let s = select(dir.path(), "*.txt", &rules("b.txt")).unwrap();
        assert_eq!(paths(&s), ["a.txt"]);
        let e = select(dir.path(), "*.txt", &rules("*.txt")).unwrap_err();
        assert!(e.contains("no such file or directory"), "{e}");
        let e = select(dir.path(), "*.none", &Ignore::default()).unwrap_err();
        assert!(e.contains("`*.none`"), "{e}");
        let e = select(dir.path(), "a[", &Ignore::default()).unwrap_err();
        assert!(e.contains("bad wildcard"), "{e}");
    }

    #[test]
    fn missing_source_and_ignored_source() {
        let dir = tree();
        let e = select(dir.path(), "nope", &Ignore::default()).unwrap_err();
        assert!(e.contains("no such file or directory"), "{e}");
        let ignore = Ignore::parse("a.txt", Some(Path::new("/ctx/.dockerignore"))).unwrap();
        let e = select(dir.path(), "a.txt", &ignore).unwrap_err();
        assert!(e.contains("excluded by /ctx/.dockerignore"), "{e}");
        // Control: the same source without the rule.
        assert!(select(dir.path(), "a.txt", &Ignore::default()).is_ok());
    }

    #[test]
    fn empty_context_and_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = select(dir.path(), ".", &Ignore::default()).unwrap();
        assert_eq!(paths(&s), ["."]);
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = Context::open(&file).err().expect("a file is not a context");
        assert!(e.contains("is not a directory"), "{e}");
        let e = Context::open(&dir.path().join("missing"))
            .err()
            .expect("no context");
        assert!(e.contains("opening the build context"), "{e}");
    }
}

mod names {
    use crate::build::context::ignore::Ignore;
    use crate::build::context::walk::{Context, Kind};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn non_utf8_names_keep_their_bytes_and_fifos_are_entries() {
        let dir = tempfile::tempdir().unwrap();
        let name = OsStr::from_bytes(b"caf\xe9.txt");
        std::fs::write(dir.path().join(name), "x").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let ctx = Context::open(dir.path()).unwrap();
        let s = ctx.select(".", &Ignore::default()).unwrap();
        let got: Vec<(&[u8], &Kind)> = s
            .entries
            .iter()
            .map(|e| (e.path.as_os_str().as_bytes(), &e.kind))
            .collect();
        assert_eq!(
            got,
            [
                (&b"."[..], &Kind::Dir),
                (&b"caf\xe9.txt"[..], &Kind::File),
                (&b"pipe"[..], &Kind::Fifo)
            ]
        );
        // A wildcard matches the name; the ignore rules see it too.
        assert_eq!(
            ctx.select("caf*", &Ignore::default())
                .unwrap()
                .entries
                .len(),
            1
        );
        let ignore = Ignore::parse("caf*", None).unwrap();
        let s = ctx.select(".", &ignore).unwrap();
        assert_eq!(s.entries.len(), 2);
    }
}
