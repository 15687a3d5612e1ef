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
    for bad in ["[]", "a[", r"a\", "[a-]", "!"] {
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
