//! `hutch build` (issue 16) through the CLI, as the unprivileged test user:
//! every config instruction in the image config, Docker's parser edge cases
//! in real builds, ignore files, the build cache step by step, multi-stage
//! builds, failing and killed builds, secrets, reproducible ids, rollback,
//! -q/--iidfile and bad Containerfiles. Every test name starts with
//! `build_` (`tests/run.sh build_`).

mod common;

use common::{TestStore, busybox, describe, eventually, processes_with};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A build context `name` in the store's scratch directory, with `files`
/// (path, content); parent directories are created.
fn context(st: &TestStore, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = st.tmp().join("ctx").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        write(&dir, path, content);
    }
    dir
}

fn write(dir: &Path, path: &str, content: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// What one `hutch build` did.
struct Build {
    out: Output,
    stderr: String,
}

impl Build {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    /// The image id printed on stdout (64 hex), asserted.
    fn id(&self) -> String {
        assert!(self.ok(), "the build failed\n{}", describe(&self.out));
        let id = String::from_utf8(self.out.stdout.clone()).unwrap();
        let id = id.trim().to_owned();
        assert!(is_hex64(&id), "stdout is not an image id: {id:?}");
        id
    }

    /// Step numbers whose progress says `CACHED`.
    fn cached(&self) -> BTreeSet<u32> {
        self.marked("CACHED")
    }

    /// Step numbers whose progress says `done in`.
    fn ran(&self) -> BTreeSet<u32> {
        self.marked("done in")
    }

    /// Step numbers announced (`[N/T] TEXT` or `[STAGE N/T] TEXT`).
    fn announced(&self) -> BTreeSet<u32> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with('['))
            .filter_map(|l| step_number(&l[1..]))
            .collect()
    }

    fn marked(&self, word: &str) -> BTreeSet<u32> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("  ["))
            .filter(|l| l.contains(&format!("] {word}")))
            .filter_map(step_number)
            .collect()
    }

    /// (steps ran, cached, context files read) from the summary line.
    fn summary(&self) -> (u32, u32, u32) {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("Built "))
            .unwrap_or_else(|| panic!("no summary line\n{}", describe(&self.out)));
        let inner = line.split_once('(').unwrap().1;
        let nums: Vec<u32> = inner
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .take(3)
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(nums.len(), 3, "summary: {line}");
        (nums[0], nums[1], nums[2])
    }
}

/// `N` of `N/T]...` or `STAGE N/T]...`.
fn step_number(l: &str) -> Option<u32> {
    let head = l.split('/').next()?;
    head.rsplit(' ').next()?.parse().ok()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn build_with(st: &TestStore, env: &[(&str, &str)], args: &[&str]) -> Build {
    let mut cmd = st.hutch();
    cmd.arg("build").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("start hutch build");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Build { out, stderr }
}

fn build(st: &TestStore, args: &[&str]) -> Build {
    build_with(st, &[], args)
}

/// `hutch build ARGS`, asserted to succeed.
fn build_ok(st: &TestStore, args: &[&str]) -> Build {
    let b = build(st, args);
    assert!(b.ok(), "hutch build {args:?} failed\n{}", describe(&b.out));
    b
}

fn inspect(st: &TestStore, image: &str) -> Value {
    let v: Value =
        serde_json::from_str(&st.run_ok(["inspect", image])).expect("inspect prints JSON");
    v[0].clone()
}

/// What says which images a store has: the rows of `hutch images`
/// (repository, tag, id; tags only) and every image manifest among the
/// store's blobs (untagged images too), sorted. Compare before and after a
/// build that must not make an image.
fn image_rows(st: &TestStore) -> Vec<String> {
    let mut rows: Vec<String> = st
        .run_ok(["images"])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let blobs = st.root().join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        if e.metadata().unwrap().len() > 64 * 1024 {
            continue; // a layer
        }
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(e.path()).unwrap()) else {
            continue;
        };
        if v.get("config").is_some() && v.get("layers").is_some() {
            rows.push(format!("manifest {}", e.file_name().to_string_lossy()));
        }
    }
    assert!(
        rows.iter().any(|r| r.starts_with("manifest ")),
        "no manifest found among the blobs: the check would be vacuous"
    );
    rows.sort();
    rows
}

/// The versions `hutch history --tag NAME` lists.
fn tag_versions(st: &TestStore, name: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&st.run_ok(["history", "--tag", name, "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The full image id a name points to now.
fn image_id(st: &TestStore, name: &str) -> String {
    let v = inspect(st, name);
    v["Id"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned()
}

/// Set the modification (and access) time of everything under `dir`,
/// `dir` included, to `epoch` seconds.
fn set_mtimes(dir: &Path, epoch: i64) {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args([
            "-exec",
            "touch",
            "-h",
            "-d",
            &format!("@{epoch}"),
            "{}",
            "+",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

/// Wait until every file under `dir` last changed (ctime, which `touch`
/// cannot set back) more than 2 s ago: hutch's file index trusts only such
/// files, as a change within the same timestamp tick would go unseen.
fn settle(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    fn newest(p: &Path) -> i64 {
        let m = std::fs::symlink_metadata(p).unwrap();
        let mut t = m.ctime();
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                t = t.max(newest(&e.unwrap().path()));
            }
        }
        t
    }
    let until = newest(dir) + 3;
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        <= until
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------ 1

#[test]
fn build_config_instructions_land_in_the_image_config() {
    let st = busybox();
    let dir = context(
        &st,
        "config",
        &[(
            "Containerfile",
            r#"ARG BASE=docker.io/library/nothing-here
FROM $BASE
ENV A=1 B="two words"
ENV C three words
ENV D=${A}x
ARG V=default
ARG W=wdefault
WORKDIR /top
WORKDIR rel/deeper
RUN pwd > /wd && echo "$V-$W" > /v && echo "$MARK" > /mark-before
USER 1000:1000
RUN id -u > /tmp/uid && id -g > /tmp/gid
USER root
LABEL l1=one "l 2"="two words"
MAINTAINER someone <a@b.example>
EXPOSE 8080 53/udp
VOLUME /data /other
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=4 CMD test -e /v
ONBUILD RUN echo from the trigger > /onbuild
SHELL ["/bin/env", "MARK=via-shell", "/bin/sh", "-c"]
RUN echo "$MARK" > /mark
CMD echo "cmd:$MARK:$A"
"#,
        )],
    );
    // The ARG before FROM is overridden with --build-arg (its default names
    // an image that does not exist); V keeps its default, W is overridden.
    let id = build_ok(
        &st,
        &[
            "-t",
            "cfg",
            "--build-arg",
            "BASE=busybox",
            "--build-arg",
            "W=over",
            "--label",
            "from.flag=yes",
            "--pull",
            "never",
            s(&dir),
        ],
    )
    .id();
    let v = inspect(&st, "cfg");
    assert_eq!(v["Id"], format!("sha256:{id}"));
    let c = &v["Config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for want in ["A=1", "B=two words", "C=three words", "D=1x"] {
        assert!(env.contains(&want), "{want} missing from Env {env:?}");
    }
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "the base image's PATH is kept: {env:?}"
    );
    assert!(
        !env.iter()
            .any(|e| e.starts_with("V=") || e.starts_with("W=")),
        "ARGs are not in the image's Env: {env:?}"
    );
    assert_eq!(c["WorkingDir"], "/top/rel/deeper");
    assert_eq!(c["User"], "root");
    let labels = &c["Labels"];
    assert_eq!(labels["l1"], "one");
    assert_eq!(labels["l 2"], "two words");
    assert_eq!(labels["maintainer"], "someone <a@b.example>");
    assert_eq!(labels["from.flag"], "yes");
    assert_eq!(labels["org.hutch.fixture"], "busybox", "base labels kept");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}, "/other": {}}));
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /v"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 4);
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo from the trigger > /onbuild"])
    );
    let shell = serde_json::json!(["/bin/env", "MARK=via-shell", "/bin/sh", "-c"]);
    assert_eq!(c["Shell"], shell);
    // CMD in shell form after SHELL uses that shell.
    let mut cmd = shell.as_array().unwrap().clone();
    cmd.push("echo \"cmd:$MARK:$A\"".into());
    assert_eq!(c["Cmd"], Value::Array(cmd));

    // What the RUN steps saw, and the CMD's output.
    let files = st.run_offline(
        "cfg",
        &[
            "cat",
            "/wd",
            "/v",
            "/tmp/uid",
            "/tmp/gid",
            "/mark-before",
            "/mark",
        ],
    );
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [
            "/top/rel/deeper",
            "default-over",
            "1000",
            "1000",
            "",
            "via-shell"
        ],
        "WORKDIR created for RUN, ARG default and override, USER, SHELL (only from its line on)"
    );
    assert_eq!(
        st.run_ok(["run", "--rm", "--network", "none", "cfg"])
            .trim(),
        "cmd:via-shell:1"
    );
    // The trigger is kept, not run in this build.
    let (code, _) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "none",
        "cfg",
        "test",
        "-e",
        "/onbuild",
    ]);
    assert_eq!(code, 1);

    // ENTRYPOINT and CMD in exec form and in shell form, one image each.
    let forms = [
        (
            "ENTRYPOINT [\"/bin/echo\", \"ep\"]\nCMD [\"c1\", \"c 2\"]",
            serde_json::json!(["/bin/echo", "ep"]),
            serde_json::json!(["c1", "c 2"]),
            "ep c1 c 2",
        ),
        (
            "ENV WHO=shell\nENTRYPOINT echo ep-$WHO\nCMD [\"ignored\"]",
            serde_json::json!(["/bin/sh", "-c", "echo ep-$WHO"]),
            serde_json::json!(["ignored"]),
            "ep-shell",
        ),
        (
            "CMD [\"/bin/echo\", \"exec\", \"$HOME\"]",
            Value::Null,
            serde_json::json!(["/bin/echo", "exec", "$HOME"]),
            "exec $HOME",
        ),
    ];
    for (i, (text, entrypoint, cmd, output)) in forms.iter().enumerate() {
        let file = format!("Form{i}");
        write(&dir, &file, &format!("FROM busybox\n{text}\n"));
        let tag = format!("form{i}");
        build_ok(&st, &["-q", "-t", &tag, "-f", s(&dir.join(&file)), s(&dir)]);
        let c = inspect(&st, &tag)["Config"].clone();
        assert_eq!(c["Entrypoint"], *entrypoint, "{text}");
        assert_eq!(c["Cmd"], *cmd, "{text}");
        assert_eq!(
            st.run_ok(["run", "--rm", "--network", "none", &tag]).trim(),
            *output,
            "{text}"
        );
    }
}

// ------------------------------------------------------------------ 2, 3

#[test]
fn build_parser_edge_cases_in_real_builds() {
    let st = busybox();
    let dir = context(
        &st,
        "parser",
        &[(
            "Containerfile",
            "# escape=`\n\
             FROM busybox\n\
             RUN echo one `\n\
             \x20   # a comment inside the continuation\n\
             \x20   two `\n\
             \n\
             \x20   three > /cont\n\
             RUN printf '%s\\n' 'C:\\path\\file' > /backslash\n\
             RUN <<EOF\n\
             echo line1 > /hd\n\
             echo \"line2 $((1+1))\" >> /hd\n\
             EOF\n\
             RUN cat <<EOT > /f\n\
             hello heredoc\n\
             \x20 indented kept\n\
             EOT\n\
             RUN [\"/bin/sh\", \"-c\", \"echo exec form $0 > /ex\", \"arg0\"]\n\
             RUN [\"/bin/echo\", \"$HOME\"]\n",
        )],
    );
    let b = build_ok(&st, &["-t", "parsed", s(&dir)]);
    assert_eq!(b.summary().0, 6, "six RUN steps ran\n{}", b.stderr);
    let out = st.run_offline(
        "parsed",
        &["cat", "/cont", "/backslash", "/hd", "/f", "/ex"],
    );
    assert_eq!(
        out,
        "one two three\nC:\\path\\file\nline1\nline2 2\nhello heredoc\n  indented kept\nexec form arg0\n",
        "escape=` makes ` the continuation and \\ plain; the comment and the empty line inside the continuation are dropped"
    );
    // The exec form gets no shell: $HOME is printed as written.
    assert!(b.stderr.contains("\n$HOME\n"), "{}", b.stderr);

    // Control: without the directive, ` is plain and \ continues.
    write(
        &dir,
        "Plain",
        "FROM busybox\nRUN echo a\\\nb > /plain && echo 'x`y' >> /plain\n",
    );
    build_ok(
        &st,
        &["-q", "-t", "plain", "-f", s(&dir.join("Plain")), s(&dir)],
    );
    assert_eq!(st.run_offline("plain", &["cat", "/plain"]), "ab\nx`y\n");

    // Variables and here-documents as Docker has them: an ARG before FROM
    // is seen in a stage only once declared again there; ${X:-word};
    // <<- strips leading tabs; a quoted delimiter leaves $ to nobody but
    // the shell; two here-documents on one RUN.
    write(
        &dir,
        "Vars",
        "ARG G=global\n\
         FROM busybox\n\
         RUN echo \"[$G]\" > /g1\n\
         ARG G\n\
         RUN echo \"[$G]\" > /g2\n\
         ARG X=1\n\
         ENV Y=$X Z=${X:-none}-${UNSET:-dflt}\n\
         RUN <<-EOT\n\
         \techo tabbed > /tab\n\
         \tEOT\n\
         RUN <<'EOF'\n\
         echo '$HOME' \"$HOME\" > /quoted\n\
         EOF\n\
         RUN <<EOF1 cat > /two && cat <<EOF2 >> /two\n\
         first\n\
         EOF1\n\
         second\n\
         EOF2\n",
    );
    build_ok(
        &st,
        &["-q", "-t", "vars", "-f", s(&dir.join("Vars")), s(&dir)],
    );
    assert_eq!(
        st.run_offline(
            "vars",
            &["sh", "-c", "cat /g1 /g2 /tab /quoted /two; echo $Y $Z"]
        ),
        "[]\n[global]\ntabbed\n$HOME /root\nfirst\nsecond\n1 1-dflt\n"
    );
}

#[test]
fn build_ignore_files_shape_the_context() {
    let st = busybox();
    let files = [
        ("Containerfile", "FROM busybox\nCOPY . /ctx\n"),
        ("keep.txt", "keep"),
        ("drop.log", "drop"),
        ("important.log", "important"),
        ("sub/deep/x.tmp", "tmp"),
        ("sub/deep/y.txt", "y"),
        ("only-docker.txt", "d"),
        (
            ".containerignore",
            "*.log\n!important.log\n**/*.tmp\n.containerignore\n",
        ),
        (".dockerignore", "only-docker.txt\n"),
    ];
    let dir = context(&st, "ignore", &files);
    build_ok(&st, &["-q", "-t", "ign", s(&dir)]);
    let listing = |tag: &str| -> BTreeSet<String> {
        st.run_offline(tag, &["find", "/ctx", "-type", "f"])
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let want: BTreeSet<String> = [
        "/ctx/Containerfile",
        "/ctx/keep.txt",
        "/ctx/important.log",
        "/ctx/sub/deep/y.txt",
        "/ctx/only-docker.txt",
        "/ctx/.dockerignore",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(
        listing("ign"),
        want,
        ".containerignore rules, the ! exception kept, and .dockerignore unused when .containerignore exists"
    );

    // Control: without .containerignore, .dockerignore applies (and the
    // files the other one excluded come back).
    std::fs::remove_file(dir.join(".containerignore")).unwrap();
    build_ok(&st, &["-q", "-t", "ign2", s(&dir)]);
    let got = listing("ign2");
    assert!(!got.contains("/ctx/only-docker.txt"), "{got:?}");
    for f in ["/ctx/drop.log", "/ctx/sub/deep/x.tmp", "/ctx/keep.txt"] {
        assert!(got.contains(f), "{f} missing: {got:?}");
    }
}

// ------------------------------------------------------------------ 4

#[test]
fn build_cache_reruns_exactly_the_changed_steps() {
    let st = busybox();
    let dir = context(
        &st,
        "cache",
        &[
            (
                "Containerfile",
                "FROM busybox\n\
                 ARG EARLY=e1\n\
                 RUN echo \"$EARLY\" > /early\n\
                 COPY a.txt /a.txt\n\
                 COPY b.txt /b.txt\n\
                 ARG LATE=l1\n\
                 RUN echo \"$LATE\" > /late\n\
                 RUN cat /a.txt /b.txt > /ab\n\
                 ARG UNUSED=u1\n\
                 LABEL u=fixed\n",
            ),
            ("a.txt", "a1\n"),
            ("b.txt", "b1\n"),
        ],
    );
    // Steps: 1 FROM, 2 ARG, 3 RUN early, 4 COPY a, 5 COPY b, 6 ARG,
    // 7 RUN late, 8 RUN ab, 9 ARG, 10 LABEL. (As in Docker, a RUN sees
    // every ARG in scope in its environment, so a change to any of them
    // reruns it: UNUSED is declared after the last RUN.)
    let layer_steps = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
    let all = layer_steps(&[3, 4, 5, 7, 8, 10]);
    set_mtimes(&dir, 1_600_000_000);
    settle(&dir);
    // The files are newer than the epoch: the layers hold the epoch as
    // their mtime.
    let epoch = [("SOURCE_DATE_EPOCH", "1500000000")];
    let first = build_with(&st, &epoch, &["-t", "c", s(&dir)]);
    let id1 = first.id();
    assert_eq!(first.ran(), all, "{}", first.stderr);
    assert_eq!(first.summary().0, 6);
    assert!(first.summary().2 >= 2, "the first build reads the files");
    let versions = tag_versions(&st, "c");
    assert_eq!(versions.len(), 1);

    // Unchanged, files older than 2 s: nothing runs, nothing is read, same
    // id, and the tag gets no new version.
    let again = build_with(&st, &epoch, &["-t", "c", s(&dir)]);
    assert_eq!(again.id(), id1);
    assert_eq!(again.summary(), (0, 6, 0), "{}", again.stderr);
    assert_eq!(again.cached(), all);
    assert_eq!(tag_versions(&st, "c"), versions, "no new tag version");

    // A new mtime (after the epoch) with the same content keeps the cache
    // and the id: the layer holds the clamped time.
    set_mtimes(&dir.join("a.txt"), 1_650_000_000);
    let touched = build_with(&st, &epoch, &["-t", "c", s(&dir)]);
    assert_eq!(touched.id(), id1, "{}", touched.stderr);
    assert_eq!(touched.summary().0, 0, "{}", touched.stderr);
    // Control: an mtime before the epoch is in the layer, so the COPY
    // (and what follows) runs again; back after the epoch, all is cached.
    set_mtimes(&dir.join("a.txt"), 1_400_000_000);
    let before = build_with(&st, &epoch, &[s(&dir)]);
    assert_eq!(before.cached(), layer_steps(&[3]), "{}", before.stderr);
    assert_ne!(before.id(), id1);
    set_mtimes(&dir.join("a.txt"), 1_600_000_000);
    let back = build_with(&st, &epoch, &[s(&dir)]);
    assert_eq!(back.id(), id1, "{}", back.stderr);
    assert_eq!(back.summary().0, 0, "{}", back.stderr);

    // Changing b.txt reruns its COPY and every later step, not earlier ones.
    write(&dir, "b.txt", "b2\n");
    set_mtimes(&dir.join("b.txt"), 1_600_000_100);
    let changed = build_with(&st, &epoch, &["-t", "c", s(&dir)]);
    let id2 = changed.id();
    assert_ne!(id2, id1);
    assert_eq!(changed.cached(), layer_steps(&[3, 4]), "{}", changed.stderr);
    assert_eq!(
        changed.ran(),
        layer_steps(&[5, 7, 8, 10]),
        "{}",
        changed.stderr
    );
    assert_eq!(st.run_offline("c", &["cat", "/ab"]), "a1\nb2\n");
    assert_eq!(
        tag_versions(&st, "c").len(),
        2,
        "a changed build moves the tag"
    );

    // A build arg used only by a later step reruns from there.
    let late = build_with(&st, &epoch, &["-t", "c", "--build-arg", "LATE=l2", s(&dir)]);
    late.id();
    assert_eq!(late.cached(), layer_steps(&[3, 4, 5]), "{}", late.stderr);
    assert_eq!(late.ran(), layer_steps(&[7, 8, 10]), "{}", late.stderr);
    assert_eq!(st.run_offline("c", &["cat", "/late"]), "l2\n");

    // A build arg no step uses, and one no ARG declares (a warning),
    // change nothing.
    let unused = build_with(
        &st,
        &epoch,
        &[
            "-t",
            "c",
            "--build-arg",
            "LATE=l2",
            "--build-arg",
            "UNUSED=u2",
            "--build-arg",
            "NOWHERE=n",
            s(&dir),
        ],
    );
    assert_eq!(unused.summary().0, 0, "{}", unused.stderr);
    assert!(
        unused
            .stderr
            .contains("--build-arg NOWHERE not used by any ARG"),
        "{}",
        unused.stderr
    );
    assert_eq!(unused.id(), late.id());

    // --no-cache reruns everything, to the same image (reproducible).
    let nocache = build_with(
        &st,
        &epoch,
        &["--no-cache", "--build-arg", "LATE=l2", s(&dir)],
    );
    assert_eq!(nocache.ran(), all, "{}", nocache.stderr);
    assert!(nocache.cached().is_empty());
    assert_eq!(nocache.id(), late.id());

    // prune --build-cache forgets every step.
    st.run_ok(["prune", "--build-cache"]);
    let pruned = build_with(&st, &epoch, &["--build-arg", "LATE=l2", s(&dir)]);
    assert_eq!(pruned.ran(), all, "{}", pruned.stderr);
    assert_eq!(pruned.summary().1, 0);
    // ... and the cache is filled again.
    let refilled = build_with(&st, &epoch, &["--build-arg", "LATE=l2", s(&dir)]);
    assert_eq!(refilled.summary().0, 0, "{}", refilled.stderr);
}

// ------------------------------------------------------------------ 5

#[test]
fn build_multi_stage_copies_between_stages_and_stops_at_target() {
    let st = busybox();
    let dir = context(
        &st,
        "multi",
        &[(
            "Containerfile",
            "FROM busybox AS builder\n\
             RUN echo built > /artifact\n\
             FROM builder AS second\n\
             RUN echo second > /second\n\
             FROM busybox\n\
             COPY --from=builder /artifact /a1\n\
             COPY --from=0 /artifact /a0\n\
             COPY --from=second /second /s\n\
             RUN cat /a1 /a0 /s > /all && echo final-stage-ran\n",
        )],
    );
    let full = build_ok(&st, &["-t", "multi", s(&dir)]);
    assert_eq!(full.summary().0, 6, "{}", full.stderr);
    assert!(full.stderr.contains("final-stage-ran"));
    assert_eq!(
        st.run_offline("multi", &["cat", "/all"]),
        "built\nbuilt\nsecond\n"
    );
    // The final stage is busybox plus copies: the builder's file is there
    // only through COPY, the second stage's FROM builder inherited it.
    let (code, _) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "none",
        "multi",
        "test",
        "-e",
        "/artifact",
    ]);
    assert_eq!(code, 1);

    // --target second: the builder and second stages only, in a fresh
    // store so nothing is cached.
    let st2 = busybox();
    let t = build_ok(&st2, &["-t", "sec", "--target", "second", s(&dir)]);
    assert_eq!(t.summary(), (2, 0, 0), "{}", t.stderr);
    assert!(!t.stderr.contains("final-stage-ran"), "{}", t.stderr);
    assert!(
        !t.stderr.contains("COPY"),
        "no step of the last stage: {}",
        t.stderr
    );
    assert_eq!(t.announced().len(), 4, "{}", t.stderr);
    assert_eq!(
        st2.run_offline("sec", &["cat", "/artifact", "/second"]),
        "built\nsecond\n",
        "FROM a previous stage starts from its result"
    );
    // --target of the first stage: one step.
    let t = build_ok(&st2, &["-t", "b", "--target", "builder", s(&dir)]);
    assert_eq!(t.announced().len(), 2, "{}", t.stderr);
    assert_eq!(
        t.summary(),
        (0, 1, 0),
        "cached from the --target second build"
    );
    let (code, err) = st2.run_fail(["build", "--target", "nope", s(&dir)]);
    assert_eq!(code, 125);
    assert!(err.contains("nope"), "{err}");

    // A RUN failing in an earlier stage fails the build with its status
    // and its own file and line.
    let file = dir.join("Fails");
    write(
        &dir,
        "Fails",
        "FROM busybox AS b\nRUN exit 3\nFROM busybox\nCOPY --from=b /x /x\n",
    );
    let b = build(&st2, &["-t", "fails", "-f", s(&file), s(&dir)]);
    assert_eq!(b.out.status.code(), Some(3), "{}", describe(&b.out));
    assert!(
        b.stderr.contains(&format!(
            "{}:2: RUN exit 3: the command exited with status 3",
            file.display()
        )),
        "{}",
        b.stderr
    );
}

// ------------------------------------------------------------------ 6

#[test]
fn build_failing_run_keeps_its_status_and_the_tag() {
    let st = busybox();
    let dir = context(
        &st,
        "fail",
        &[
            ("Containerfile", "FROM busybox\nRUN echo first > /first\n"),
            ("f.txt", "f"),
        ],
    );
    let old = build_ok(&st, &["-t", "app", s(&dir)]).id();
    let images = image_rows(&st);
    write(
        &dir,
        "Containerfile",
        "FROM busybox\n\
         RUN echo first > /first\n\
         COPY f.txt /f.txt\n\
         # a comment\n\
         RUN echo about to fail && exit 7\n\
         RUN echo never > /never\n",
    );
    let b = build(&st, &["-t", "app", s(&dir)]);
    assert_eq!(b.out.status.code(), Some(7), "{}", describe(&b.out));
    let file = dir.join("Containerfile");
    assert!(
        b.stderr.contains(&format!(
            "{}:5: RUN echo about to fail && exit 7: the command exited with status 7",
            file.display()
        )),
        "{}",
        b.stderr
    );
    assert!(
        b.stderr.contains("about to fail"),
        "the RUN's output is shown"
    );
    assert!(b.out.stdout.is_empty(), "no image id on stdout");
    assert!(
        !b.stderr.contains("[5/5]"),
        "steps after the failure are not run: {}",
        b.stderr
    );
    assert_eq!(image_id(&st, "app"), old, "the tag does not move");
    assert_eq!(image_rows(&st), images, "no new image");
    assert_eq!(tag_versions(&st, "app").len(), 1);

    // Fixed: the steps before the failure come from the cache.
    write(
        &dir,
        "Containerfile",
        "FROM busybox\n\
         RUN echo first > /first\n\
         COPY f.txt /f.txt\n\
         # a comment\n\
         RUN echo fixed\n\
         RUN echo never > /never\n",
    );
    let fixed = build_ok(&st, &["-t", "app", s(&dir)]);
    assert_eq!(fixed.cached(), [2, 3].into(), "{}", fixed.stderr);
    assert_eq!(fixed.ran(), [4, 5].into(), "{}", fixed.stderr);
    assert_ne!(image_id(&st, "app"), old);
}

// ------------------------------------------------------------------ 7

#[test]
fn build_killed_leaves_no_image_and_no_process() {
    let st = busybox();
    let marker = "sleep 4711";
    let dir = context(
        &st,
        "killed",
        &[
            (
                "Containerfile",
                &format!("FROM busybox\nCOPY f.txt /f.txt\nRUN echo start && {marker}\n"),
            ),
            ("f.txt", "f"),
        ],
    );
    let images = image_rows(&st);
    let err_path = st.tmp().join("killed.err");
    let mut child = st
        .hutch()
        .args(["build", "-t", "killed", s(&dir)])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = eventually(60, || {
        std::fs::read_to_string(&err_path)
            .unwrap()
            .contains("[3/3] RUN")
            && !processes_with(marker).is_empty()
    });
    assert!(
        started,
        "the RUN did not start: {}",
        std::fs::read_to_string(&err_path).unwrap()
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(err.contains("[2/3] done"), "the COPY finished first: {err}");
    assert!(
        eventually(20, || processes_with(marker).is_empty()),
        "the RUN's process outlived the build: {:?}",
        processes_with(marker)
    );
    assert_eq!(image_rows(&st), images, "no new image");
    let (_, out) = st.run(["inspect", "killed"]);
    assert!(!out.status.success(), "no tag `killed`");

    // The COPY step was cached before the kill; the RUN now finishes.
    write(
        &dir,
        "Containerfile",
        "FROM busybox\nCOPY f.txt /f.txt\nRUN echo start\n",
    );
    let b = build_ok(&st, &["-t", "killed", s(&dir)]);
    assert_eq!(b.cached(), [2].into(), "{}", b.stderr);
    assert_eq!(b.ran(), [3].into(), "{}", b.stderr);
}

// ------------------------------------------------------------------ 8

/// Every layer of IMAGE saved as an OCI archive, decompressed, plus its
/// config and manifest: the bytes an image carries.
fn saved_bytes(st: &TestStore, image: &str) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let path = st.tmp().join(format!("{image}.tar"));
    st.run_ok(["save", "-o", s(&path), image]);
    let mut ar = tar::Archive::new(std::fs::File::open(&path).unwrap());
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut raw = Vec::new();
        e.read_to_end(&mut raw).unwrap();
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut d = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut d)
                .unwrap();
            d
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            zstd::decode_all(&raw[..]).unwrap()
        } else {
            raw
        };
        out.push((name, data));
    }
    out
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn build_secret_is_mounted_for_run_and_never_stored() {
    let st = busybox();
    let secret = "s3cr3t-T0KEN-9f8e7d";
    let secret_file = st.tmp().join("token");
    std::fs::write(&secret_file, secret).unwrap();
    // The Containerfile must not hold the secret (its text is in the
    // history): the RUN proves it read it by its length and checksum.
    let dir = context(
        &st,
        "secret",
        &[(
            "Containerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null \
             && wc -c < /run/secrets/tok > /tmp/len && sha256sum < /run/secrets/tok > /tmp/sum\n",
        )],
    );
    let src = format!("id=tok,src={}", s(&secret_file));
    build_ok(&st, &["-q", "-t", "sec", "--secret", &src, s(&dir)]);
    let sum = std::process::Command::new("sha256sum")
        .arg(&secret_file)
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let sum = sum.split_whitespace().next().unwrap();
    let seen = st.run_offline("sec", &["cat", "/tmp/len", "/tmp/sum"]);
    let seen: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(
        seen[..2],
        [&secret.len().to_string(), sum],
        "what the RUN read"
    );
    let (_, out) = st.run([
        "run",
        "--rm",
        "--network",
        "none",
        "sec",
        "ls",
        "/run/secrets",
    ]);
    assert!(
        !out.status.success(),
        "/run/secrets is in the image: {}",
        describe(&out)
    );
    let saved = saved_bytes(&st, "sec");
    assert!(
        saved.len() >= 5,
        "layers, config, manifest, index: {saved:?}"
    );
    for (name, data) in &saved {
        assert!(!holds(data, secret), "the secret is in {name}");
    }
    // Without --secret the RUN fails: the secret is what made it pass.
    // (--no-cache: like BuildKit, hutch keeps secrets out of the cache key.)
    let b = build(&st, &["--no-cache", "-t", "sec", s(&dir)]);
    assert!(!b.ok(), "{}", describe(&b.out));

    // Control: the same file COPYed is found by the same search.
    std::fs::copy(&secret_file, dir.join("token")).unwrap();
    write(&dir, "Copy", "FROM busybox\nCOPY token /token\n");
    build_ok(
        &st,
        &["-q", "-t", "copied", "-f", s(&dir.join("Copy")), s(&dir)],
    );
    let found: Vec<String> = saved_bytes(&st, "copied")
        .into_iter()
        .filter(|(_, d)| holds(d, secret))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(found.len(), 1, "the COPY layer holds the secret: {found:?}");
}

// ------------------------------------------------------------------ 9

#[test]
fn build_is_reproducible_across_stores_with_source_date_epoch() {
    let files = [
        (
            "Containerfile",
            "FROM busybox\nCOPY . /app\nRUN echo ran > /ran && mkdir -p /var/x\nENV K=v\n",
        ),
        ("a.txt", "a"),
        ("dir/b.txt", "b"),
    ];
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let st = busybox();
            let dir = context(&st, "repro", &files);
            // Different file times in the two contexts: clamped by the epoch.
            set_mtimes(&dir, 1_700_000_500 + i * 1000);
            let id = build_ok(&st, &["--source-date-epoch", "1700000000", s(&dir)]).id();
            if i == 0 {
                // The environment variable does the same; another epoch
                // gives another image.
                let env = build_with(&st, &[("SOURCE_DATE_EPOCH", "1700000000")], &[s(&dir)]);
                assert_eq!(env.id(), id);
                let other = build_ok(&st, &["--source-date-epoch", "1700000001", s(&dir)]);
                assert_ne!(other.id(), id, "the epoch is in the image");
            }
            id
        })
        .collect();
    assert_eq!(ids[0], ids[1], "two stores, one image id");
}

// ------------------------------------------------------------------ 10, 11

#[test]
fn build_rollback_quiet_and_iidfile() {
    let st = busybox();
    let dir = context(
        &st,
        "roll",
        &[("Containerfile", "FROM busybox\nRUN echo v1 > /v\n")],
    );
    let iid = st.tmp().join("iid");
    let q = build(&st, &["-q", "--iidfile", s(&iid), "-t", "app", s(&dir)]);
    let first = q.id();
    assert_eq!(
        String::from_utf8(q.out.stdout.clone()).unwrap(),
        format!("{first}\n"),
        "-q: only the id on stdout"
    );
    assert!(q.stderr.is_empty(), "-q: nothing on stderr: {}", q.stderr);
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap().trim(),
        format!("sha256:{first}")
    );
    // Control: without -q, progress and the summary are on stderr.
    write(&dir, "Containerfile", "FROM busybox\nRUN echo v2 > /v\n");
    let second = build_ok(&st, &["-t", "app", "-t", "other:x", s(&dir)]);
    assert!(second.stderr.contains("[2/2] RUN echo v2"));
    assert!(
        second
            .stderr
            .contains("tagged localhost/app:latest, localhost/other:x"),
        "{}",
        second.stderr
    );
    let second = second.id();
    assert_ne!(first, second);
    assert_eq!(image_id(&st, "app"), second);
    assert_eq!(image_id(&st, "other:x"), second);
    assert_eq!(st.run_offline("app", &["cat", "/v"]), "v2\n");
    st.run_ok(["rollback", "app"]);
    assert_eq!(image_id(&st, "app"), first);
    assert_eq!(st.run_offline("app", &["cat", "/v"]), "v1\n");
    assert_eq!(image_id(&st, "other:x"), second, "the other tag stays");
}

// ------------------------------------------------------------------ 12

#[test]
fn build_bad_input_fails_with_file_and_line() {
    let st = busybox();
    let dir = context(&st, "bad", &[("ok.txt", "ok")]);
    std::fs::write(st.tmp().join("ctx/outside"), "outside").unwrap();
    let images = image_rows(&st);
    let cases = [
        (
            "Unknown",
            "FROM busybox\n\nFROBNICATE x\n",
            3,
            "unknown instruction `FROBNICATE`",
        ),
        (
            "RunFirst",
            "# hi\nRUN true\nFROM busybox\n",
            2,
            "RUN comes before the first FROM",
        ),
        (
            "Missing",
            "FROM busybox\nCOPY ok.txt /ok\nCOPY missing.txt /x\n",
            3,
            "missing.txt",
        ),
        (
            "Outside",
            "FROM busybox\nCOPY ../outside /x\n",
            2,
            "outside the build context",
        ),
    ];
    for (name, text, line, what) in cases {
        write(&dir, name, text);
        let file = dir.join(name);
        let b = build(&st, &["-t", "bad", "-f", s(&file), s(&dir)]);
        assert_eq!(
            b.out.status.code(),
            Some(125),
            "{name}: {}",
            describe(&b.out)
        );
        let at = format!("{}:{line}: ", file.display());
        let msg = b
            .stderr
            .lines()
            .find(|l| l.starts_with("hutch: error: "))
            .unwrap_or_else(|| panic!("{name}: no error line: {}", b.stderr));
        assert!(msg.contains(&at), "{name}: {msg:?} should name {at:?}");
        assert!(msg.contains(what), "{name}: {msg:?} should say {what:?}");
        assert!(b.out.stdout.is_empty());
        assert_eq!(image_rows(&st), images, "{name}: no new image");
    }
    // Control: a good file in the same context builds.
    write(&dir, "Good", "FROM busybox\nCOPY ok.txt /ok\n");
    build_ok(
        &st,
        &["-q", "-t", "bad", "-f", s(&dir.join("Good")), s(&dir)],
    );
    assert_eq!(
        image_rows(&st).len(),
        images.len() + 2,
        "a good build adds its tag and its manifest (the check sees images)"
    );
}

// ------------------------------------------------------------------ --network

#[test]
fn build_network_reaches_host_loopback_only_when_allowed() {
    use std::io::{Read, Write};
    let st = busybox();
    // A one-answer-per-connection HTTP server on the host's loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nfrom-host\n");
        }
    });
    let dir = context(
        &st,
        "net",
        &[(
            "Containerfile",
            "FROM busybox\nARG PORT\nRUN wget -q -O /got http://10.0.2.2:$PORT/\n",
        )],
    );
    let port_arg = format!("PORT={port}");
    build_ok(
        &st,
        &[
            "-q",
            "-t",
            "net",
            "--build-arg",
            &port_arg,
            "--network",
            "slirp:allow_host_loopback=true",
            s(&dir),
        ],
    );
    assert_eq!(st.run_offline("net", &["cat", "/got"]), "from-host\n");
    // Controls (--no-cache, the network is not in the step's key): plain
    // slirp does not reach the host's loopback, and none has no network.
    for network in ["slirp", "none"] {
        let b = build(
            &st,
            &[
                "--no-cache",
                "--build-arg",
                &port_arg,
                "--network",
                network,
                s(&dir),
            ],
        );
        assert_eq!(
            b.out.status.code(),
            Some(1),
            "{network}: {}",
            describe(&b.out)
        );
        assert!(
            b.stderr.contains("wget: can't connect"),
            "{network}: {}",
            b.stderr
        );
    }
    let (code, err) = st.run_fail(["build", "--network", "host", s(&dir)]);
    assert_eq!(code, 125);
    assert!(err.contains("slirp or none"), "{err}");
}

/// A RUN that renames a directory of the base image (`mv`: one rename on
/// the overlay, nothing copied) gives a layer with the whole moved
/// directory: the next step and the image see its files, the old path is
/// gone, and the base image is unchanged.
#[test]
fn build_run_renaming_a_base_directory_keeps_its_content() {
    let st = busybox();
    let dir = context(
        &st,
        "mvdir",
        &[(
            "Containerfile",
            "FROM busybox\n\
             RUN mv /opt/links /moved && rm /moved/b\n\
             RUN ls /moved > /listing && cat /moved/a >> /listing\n",
        )],
    );
    build_ok(&st, &["-t", "mv", s(&dir)]);
    let long = "long".repeat(30);
    let out = st.run_offline(
        "mv",
        &[
            "sh",
            "-c",
            "cat /listing; readlink /moved/sym; test -e /opt/links || echo gone",
        ],
    );
    assert_eq!(out, format!("a\n{long}\nsym\nhardlinked\na\ngone\n"));
    assert_eq!(
        st.run_offline("busybox", &["ls", "/opt/links"]),
        format!("a\nb\n{long}\nsym\n"),
        "the base image (control)"
    );
}
