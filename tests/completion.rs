//! `hutch completion SHELL` and `hutch man DIR`: generated from the clap
//! definitions, so they must know every command and flag that exists and
//! nothing that does not.

mod common;

use common::{TestStore, describe};

/// What bash's completion offers for `hutch WORDS...` (the last word is the
/// one being completed), with the script `hutch completion bash` wrote.
fn bash_complete(st: &TestStore, words: &[&str]) -> Vec<String> {
    let script = st.tmp().join("hutch.bash");
    std::fs::write(&script, st.run_ok(["completion", "bash"])).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=(hutch {}); COMP_CWORD={}; \
         COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
         _hutch hutch '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len(),
        words.last().unwrap(),
        if words.len() > 1 {
            words[words.len() - 2]
        } else {
            "hutch"
        },
    );
    let out = st.command("bash").args(["-c", &program]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_offers_the_commands_and_flags_that_exist() {
    let st = TestStore::new();
    let script = st.run_ok(["completion", "bash"]);
    let syntax = st
        .command("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "not valid bash: {}",
        describe(&syntax)
    );

    let subcommands = bash_complete(&st, &["r"]);
    for want in ["rm", "rmi", "rollback", "run"] {
        assert!(
            subcommands.iter().any(|c| c == want),
            "{want} not offered: {subcommands:?}"
        );
    }
    // Control: a prefix no command has gets nothing.
    assert!(bash_complete(&st, &["zz"]).is_empty());

    let flags = bash_complete(&st, &["run", "--netw"]);
    assert_eq!(flags, ["--network"], "run's flags: {flags:?}");
    // The shared --format flag reaches every listing.
    for cmd in ["images", "ps", "check", "history", "prune"] {
        let f = bash_complete(&st, &[cmd, "--form"]);
        assert_eq!(f, ["--format"], "{cmd}: {f:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_name_the_commands() {
    let st = TestStore::new();
    let zsh = st.run_ok(["completion", "zsh"]);
    assert!(
        zsh.starts_with("#compdef hutch"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    assert!(
        zsh.contains("'--network=["),
        "run --network missing from the zsh script"
    );
    let fish = st.run_ok(["completion", "fish"]);
    assert!(
        fish.contains("complete -c hutch"),
        "{}",
        &fish[..fish.len().min(200)]
    );
    assert!(
        fish.contains("__fish_hutch_using_subcommand run"),
        "run missing from the fish script"
    );
    // A shell clap cannot write for is refused with the list.
    let (code, err) = st.run_fail(["completion", "tcsh"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("bash") && err.contains("fish"), "{err}");
}

#[test]
fn man_writes_one_page_per_command() {
    let st = TestStore::new();
    let dir = st.tmp().join("man/man1");
    st.run_ok(["man".as_ref(), dir.as_os_str()]);
    let run = std::fs::read_to_string(dir.join("hutch-run.1")).unwrap();
    assert!(run.contains(".TH hutch-run 1"), "{run}");
    assert!(run.contains("\\-\\-network"), "run's page lacks --network");
    let top = std::fs::read_to_string(dir.join("hutch.1")).unwrap();
    assert!(
        top.contains("hutch\\-run(1)") || top.contains("hutch-run"),
        "{top}"
    );
    assert!(
        dir.join("hutch-profile-show.1").exists(),
        "nested commands get pages"
    );
    // Bad input: a directory that cannot be made.
    let file = st.tmp().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (code, err) = st.run_fail(["man".as_ref(), file.join("man1").as_os_str()]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("for the manual pages"), "{err}");
}
