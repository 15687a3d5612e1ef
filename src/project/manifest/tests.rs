use super::template::{DEFAULT_IMAGE, template};
use super::*;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse_in(text, "hutch.toml", Path::new("/proj"))
}

fn ok(text: &str) -> Manifest {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- in:\n{text}"))
}

/// The line, the key and the message of an error, and its whole text.
fn err(text: &str) -> (Option<usize>, Option<String>, String, String) {
    match parse(text) {
        Err(e @ ManifestError::Invalid { .. }) => {
            let shown = e.to_string();
            let ManifestError::Invalid {
                line, key, message, ..
            } = e
            else {
                unreachable!()
            };
            (line, key, message, shown)
        }
        Err(e) => panic!("not an Invalid error: {e}"),
        Ok(m) => panic!("parsed, but should not have: {m:?}\n--- in:\n{text}"),
    }
}

/// An error at `line`, on `key`, whose message contains `needle`.
#[track_caller]
fn assert_err(text: &str, line: usize, key: Option<&str>, needle: &str) {
    let (l, k, message, shown) = err(text);
    assert_eq!(l, Some(line), "line of: {shown}");
    assert_eq!(k.as_deref(), key, "key of: {shown}");
    assert!(message.contains(needle), "{needle:?} not in: {shown}");
    let place = match key {
        Some(k) => format!("hutch.toml:{line}: key `{k}`: "),
        None => format!("hutch.toml:{line}: "),
    };
    assert!(
        shown.starts_with(&place),
        "{place:?} does not start: {shown}"
    );
}

const MINIMAL: &str = "[env]\nimage = \"debian:stable\"\n";

#[test]
fn minimal_file_gets_the_defaults() {
    let m = ok(MINIMAL);
    assert_eq!(m.root, Path::new("/proj"));
    assert_eq!(m.env.source, ImageSource::Image("debian:stable".into()));
    assert_eq!(m.env.profile, ProfileChoice::Name("dev".into()));
    assert!(m.env.mounts.is_empty() && m.env.env.is_empty() && m.env.ports.is_empty());
    assert_eq!((m.env.shell, m.env.workdir), (None, None));
    assert!(m.env.setup.is_empty());
    assert!(m.services.is_empty() && m.platforms.is_empty());
}

#[test]
fn every_key_of_env_with_an_image() {
    let m = ok(r#"
platforms = ["linux/amd64", "linux/arm/v7"]
[env]
image = "docker.io/library/debian:bookworm"
profile = "default"
mounts = ["./cache:/cache", "../shared:/shared:ro", "/etc/ssl:/etc/ssl:rw", "data:/data", "sub/dir:/sub"]
env = { RUST_LOG = "debug", EMPTY = "", DOLLAR = "${HOME}" }
ports = ["8080:80", "0.0.0.0:5353:53/udp"]
shell = "/bin/zsh"
setup = ["apt-get update", "make deps"]
workdir = "/work"
"#);
    let p: Vec<String> = m
        .platforms
        .iter()
        .map(|p| format!("{}/{}/{:?}", p.os, p.architecture, p.variant))
        .collect();
    assert_eq!(p, ["linux/amd64/None", "linux/arm/Some(\"v7\")"]);
    assert_eq!(
        m.env.source,
        ImageSource::Image("docker.io/library/debian:bookworm".into())
    );
    assert_eq!(m.env.profile, ProfileChoice::Name("default".into()));
    let bind = |h: &str, c: &str, ro| Mount::Bind {
        host: h.into(),
        container: c.into(),
        read_only: ro,
    };
    assert_eq!(
        m.env.mounts,
        [
            bind("/proj/cache", "/cache", false),
            bind("/shared", "/shared", true),
            bind("/etc/ssl", "/etc/ssl", false),
            Mount::Volume {
                name: "data".into(),
                container: "/data".into(),
                read_only: false
            },
            bind("/proj/sub/dir", "/sub", false),
        ]
    );
    assert_eq!(m.env.env["RUST_LOG"], "debug");
    assert_eq!(m.env.env["EMPTY"], "");
    assert_eq!(m.env.env["DOLLAR"], "${HOME}", "values are not expanded");
    let ports: Vec<String> = m.env.ports.iter().map(|p| p.describe()).collect();
    assert_eq!(ports, ["127.0.0.1:8080->80/tcp", "0.0.0.0:5353->53/udp"]);
    assert_eq!(m.env.shell.as_deref(), Some("/bin/zsh"));
    assert_eq!(m.env.setup, ["apt-get update", "make deps"]);
    assert_eq!(m.env.workdir.as_deref(), Some("/work"));
}

#[test]
fn env_build_with_and_without_its_companions() {
    let m = ok(r#"
[env]
build = "docker/Containerfile"
context = "./docker/../ctx"
args = { VERSION = "1.2", EMPTY = "" }
target = "Dev"
profile = "profiles/mine.toml"
"#);
    let ImageSource::Build(b) = &m.env.source else {
        panic!("{:?}", m.env.source)
    };
    assert_eq!(b.containerfile, Path::new("/proj/docker/Containerfile"));
    assert_eq!(b.context, Path::new("/proj/ctx"));
    assert_eq!(b.args["VERSION"], "1.2");
    assert_eq!(b.args["EMPTY"], "");
    assert_eq!(
        b.target.as_deref(),
        Some("dev"),
        "stage names are case-blind"
    );
    assert_eq!(
        m.env.profile,
        ProfileChoice::File("/proj/profiles/mine.toml".into())
    );
    // Defaults: the context is the project root, no args, the last stage.
    let m = ok("[env]\nbuild = \"/abs/Containerfile\"\n");
    assert_eq!(
        m.env.source,
        ImageSource::Build(BuildSpec {
            containerfile: "/abs/Containerfile".into(),
            context: "/proj".into(),
            args: BTreeMap::new(),
            target: None,
        })
    );
}

#[test]
fn every_key_of_a_service() {
    let m = ok(r#"
[env]
image = "debian:stable"
ports = ["8080:8080"]

[services.db]
image = "postgres:16"
env = { POSTGRES_PASSWORD = "dev" }
command = ["postgres", "-c", "fsync=off"]
volumes = ["db-data:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d:ro"]
ready = { tcp = 5432, timeout = 30 }
depends_on = ["cache"]
ports = ["5432:5432"]

[services.cache]
build = "cache/Containerfile"
context = "cache"
args = { V = "7" }
target = "server"
command = "redis-server --save '' && true"
ready = { command = "redis-cli ping" }

[services.web-2]
image = "busybox"
depends_on = ["db", "cache"]
"#);
    let db = &m.services["db"];
    assert_eq!(db.source, ImageSource::Image("postgres:16".into()));
    assert_eq!(db.env["POSTGRES_PASSWORD"], "dev");
    assert_eq!(
        db.command.as_deref(),
        Some(&["postgres".to_owned(), "-c".into(), "fsync=off".into()][..])
    );
    assert_eq!(
        db.volumes,
        [
            Mount::Volume {
                name: "db-data".into(),
                container: "/var/lib/postgresql/data".into(),
                read_only: false
            },
            Mount::Bind {
                host: "/proj/initdb".into(),
                container: "/docker-entrypoint-initdb.d".into(),
                read_only: true
            }
        ]
    );
    assert_eq!(
        db.ready,
        Some(Ready {
            check: ReadyCheck::Tcp(5432),
            timeout: Duration::from_secs(30)
        })
    );
    assert_eq!(db.depends_on, ["cache"]);
    assert_eq!(db.ports[0].describe(), "127.0.0.1:5432->5432/tcp");

    let cache = &m.services["cache"];
    let ImageSource::Build(b) = &cache.source else {
        panic!("{:?}", cache.source)
    };
    assert_eq!(b.containerfile, Path::new("/proj/cache/Containerfile"));
    assert_eq!(b.context, Path::new("/proj/cache"));
    assert_eq!(
        (b.args["V"].as_str(), b.target.as_deref()),
        ("7", Some("server"))
    );
    assert_eq!(
        cache.command.as_deref(),
        Some(
            &[
                "/bin/sh".to_owned(),
                "-c".into(),
                "redis-server --save '' && true".into()
            ][..]
        )
    );
    assert_eq!(
        cache.ready,
        Some(Ready {
            check: ReadyCheck::Command("redis-cli ping".into()),
            timeout: Duration::from_secs(DEFAULT_READY_TIMEOUT.into())
        })
    );
    // Without the optional keys: the image's command, no volumes, ready
    // when started, no dependencies, nothing published.
    let web = &m.services["web-2"];
    assert_eq!(web.command, None);
    assert!(web.volumes.is_empty() && web.ready.is_none() && web.ports.is_empty());
    assert!(web.env.is_empty());
    assert_eq!(m.start_order(), ["cache", "db", "web-2"]);
}

#[test]
fn start_order_puts_dependencies_first_and_ties_by_name() {
    let m = ok(r#"
[env]
image = "debian"
[services.a]
image = "busybox"
depends_on = ["z"]
[services.b]
image = "busybox"
[services.z]
image = "busybox"
depends_on = ["b"]
"#);
    assert_eq!(m.start_order(), ["b", "z", "a"]);
}

#[test]
fn unknown_keys_name_the_key_the_section_and_the_allowed_ones() {
    assert_err(
        "colour = 1\n[env]\nimage = \"x\"\n",
        1,
        None,
        "unknown key `colour` at the top level",
    );
    let (_, _, message, _) = err("[env]\nimage = \"x\"\nimgae = \"y\"\n");
    assert!(
        message.contains("unknown key `imgae` in [env]"),
        "{message}"
    );
    assert!(
        message.contains("`image`") && message.contains("`workdir`"),
        "{message}"
    );
    assert_err(
        "[env]\nimage = \"x\"\n[services.db]\nimage = \"x\"\nhealthcheck = \"y\"\n",
        5,
        None,
        "unknown key `healthcheck` in [services.db]",
    );
    assert_err(
        "[env]\nimage = \"x\"\n[services.db]\nimage = \"x\"\nready = { tcp = 1, retries = 3 }\n",
        5,
        None,
        "unknown key `retries` in [services.db.ready]",
    );
}

#[test]
fn bad_values_name_their_line_and_key() {
    let env = |rest: &str| format!("[env]\nimage = \"debian\"\n{rest}\n");
    assert_err(
        &env("ports = [\"80:abc\"]"),
        3,
        Some("env.ports"),
        "not a number",
    );
    assert_err(
        &env("ports = \"8080:80\""),
        3,
        Some("env.ports"),
        "expected an array",
    );
    assert_err(
        &env("setup = [\"\"]"),
        3,
        Some("env.setup"),
        "the command is empty",
    );
    assert_err(
        &env("shell = \"bash\""),
        3,
        Some("env.shell"),
        "not absolute",
    );
    assert_err(
        &env("workdir = \"src\""),
        3,
        Some("env.workdir"),
        "not absolute",
    );
    assert_err(
        &env("profile = \"no such\""),
        3,
        Some("env.profile"),
        "invalid profile name",
    );
    assert_err(
        &env("env = { \"A=B\" = \"x\" }"),
        3,
        Some("env.env.A=B"),
        "environment variable name",
    );
    assert_err(
        &env("env = { A = 1 }"),
        3,
        Some("env.env.A"),
        "invalid type: integer",
    );
    assert_err(
        "platforms = [\"amd64\"]\n[env]\nimage = \"x\"\n",
        1,
        Some("platforms"),
        "OS/ARCH",
    );
    assert_err(
        "[env]\nimage = \"Debian:stable\"\n",
        2,
        Some("env.image"),
        "invalid image reference",
    );
    assert_err(
        "[env]\nimage = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n",
        2,
        Some("env.image"),
        "only a digest",
    );
    assert_err("env = 3\n", 1, Some("env"), "`env` must be a table");
    let svc =
        |rest: &str| format!("[env]\nimage = \"debian\"\n[services.db]\nimage = \"x\"\n{rest}\n");
    assert_err(
        &svc("command = []"),
        5,
        Some("services.db.command"),
        "the command is empty",
    );
    assert_err(
        &svc("command = 3"),
        5,
        Some("services.db.command"),
        "an array of strings",
    );
    assert_err(
        &svc("ready = { tcp = 0 }"),
        5,
        Some("services.db.ready.tcp"),
        "1 to 65535",
    );
    assert_err(
        &svc("ready = { tcp = 80, timeout = 0 }"),
        5,
        Some("services.db.ready.timeout"),
        "1 to 86400",
    );
}

#[test]
fn a_table_given_as_a_value_is_named_a_table() {
    let text = "[env]\nimage = \"d\"\n[services]\ndb = 3\n";
    assert_err(
        text,
        4,
        Some("services.db"),
        "invalid type: integer `3`, expected a table",
    );
    let (_, _, message, _) = err(text);
    assert!(!message.contains("struct"), "{message}");
    assert_err(
        "services = 3\n[env]\nimage = \"d\"\n",
        1,
        Some("services"),
        "`services` must be a table",
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let (line, key, message, _) = err("[env]\nimage = \"debian\nshell = \"/bin/sh\"\n");
    assert_eq!(line, Some(2));
    assert_eq!(key.as_deref(), Some("env.image"));
    assert!(message.starts_with("invalid TOML"), "{message}");
}

#[test]
fn image_and_build_exactly_one() {
    assert_err(
        "[env]\nbuild = \"Containerfile\"\nimage = \"debian\"\n",
        3,
        Some("env.image"),
        "both `image` and `build`",
    );
    assert_err(
        "\n[env]\nshell = \"/bin/sh\"\n",
        2,
        Some("env"),
        "neither `image` nor `build`",
    );
    assert_err(
        "[env]\nimage = \"d\"\n\n[services.db]\nenv = { A = \"b\" }\n",
        4,
        Some("services.db"),
        "neither `image` nor `build`",
    );
    assert_err(
        "[env]\nimage = \"d\"\n[services.db]\nimage = \"d\"\nbuild = \"C\"\n",
        4,
        Some("services.db.image"),
        "both",
    );
    // The build's companions without a build.
    assert_err(
        "[env]\nimage = \"d\"\ncontext = \"ctx\"\n",
        3,
        Some("env.context"),
        "goes with `build`",
    );
    assert_err(
        "[env]\nimage = \"d\"\ntarget = \"t\"\n",
        3,
        Some("env.target"),
        "goes with `build`",
    );
    assert_err(
        "[env]\nimage = \"d\"\nargs = { A = \"1\" }\n",
        3,
        Some("env.args"),
        "goes with `build`",
    );
    // No [env] at all.
    let (line, key, message, shown) = err("platforms = [\"linux/amd64\"]\n");
    assert_eq!((line, key), (None, None));
    assert!(message.contains("no [env] section"), "{shown}");
    assert!(shown.starts_with("hutch.toml: "), "{shown}");
}

#[test]
fn service_names_are_checked() {
    for bad in ["DB", "1db", "db_1", "-db", "d.b"] {
        let text = format!("[env]\nimage = \"d\"\n[services.\"{bad}\"]\nimage = \"d\"\n");
        let (line, _, message, shown) = err(&text);
        assert_eq!(line, Some(3), "{shown}");
        assert!(message.contains("invalid service name"), "{shown}");
    }
    let long = "a".repeat(64);
    let (_, _, message, _) = err(&format!(
        "[env]\nimage = \"d\"\n[services.{long}]\nimage = \"d\"\n"
    ));
    assert!(message.contains("invalid service name"), "{message}");
    // The control: good names pass.
    let m = ok(&format!(
        "[env]\nimage = \"d\"\n[services.db-2]\nimage = \"d\"\n[services.{}]\nimage = \"d\"\n",
        "a".repeat(63)
    ));
    assert_eq!(m.services.len(), 2);
}

#[test]
fn depends_on_names_services_without_cycles() {
    let head = "[env]\nimage = \"d\"\n";
    assert_err(
        &format!("{head}[services.web]\nimage = \"d\"\ndepends_on = [\"db\"]\n"),
        5,
        Some("services.web.depends_on"),
        "no service named `db`; the services are `web`",
    );
    assert_err(
        &format!("{head}[services.web]\nimage = \"d\"\ndepends_on = [\"web\"]\n"),
        5,
        Some("services.web.depends_on"),
        "cycle: web -> web",
    );
    let (line, key, message, shown) = err(&format!(
        "{head}[services.a]\nimage = \"d\"\ndepends_on = [\"b\"]\n\
         [services.b]\nimage = \"d\"\ndepends_on = [\"c\"]\n\
         [services.c]\nimage = \"d\"\ndepends_on = [\n  \"a\",\n]\n"
    ));
    assert!(message.contains("cycle: a -> b -> c -> a"), "{shown}");
    assert_eq!(
        (line, key.as_deref()),
        (Some(12), Some("services.c.depends_on"))
    );
    assert_err(
        &format!("{head}[services.a]\nimage = \"d\"\ndepends_on = [\"Bad\"]\n"),
        5,
        Some("services.a.depends_on"),
        "invalid service name",
    );
}

#[test]
fn bad_ports_are_refused() {
    let env = |p: &str| format!("[env]\nimage = \"d\"\nports = [\"{p}\"]\n");
    assert_err(&env("8080:70000"), 3, Some("env.ports"), "out of range");
    assert_err(&env("0:80"), 3, Some("env.ports"), "must not be 0");
    assert_err(&env("80"), 3, Some("env.ports"), "no host port");
    assert_err(&env("80:80/sctp"), 3, Some("env.ports"), "unknown protocol");
    let (_, _, message, _) = err(&env("x:80"));
    assert!(
        !message.contains("-p "),
        "no flag in a file's message: {message}"
    );
    // The same host port twice in the project (its containers share one
    // network), with a different protocol as the control.
    assert_err(
        "[env]\nimage = \"d\"\nports = [\"8080:80\"]\n[services.db]\nimage = \"d\"\nports = [\"8080:5432\"]\n",
        6,
        Some("services.db.ports"),
        "published twice (also by `env.ports`",
    );
    ok(
        "[env]\nimage = \"d\"\nports = [\"8080:80\"]\n[services.db]\nimage = \"d\"\nports = [\"8080:53/udp\", \"127.0.0.2:8080:80\"]\n",
    );
    assert_err(
        "[env]\nimage = \"d\"\nports = [\"8080:80\", \"0.0.0.0:8080:81\"]\n",
        3,
        Some("env.ports"),
        "published twice",
    );
}

#[test]
fn bad_mounts_are_refused() {
    let env =
        |m: &str| format!("[env]\nimage = \"d\"\nmounts = [\n  \"./ok:/ok\",\n  \"{m}\",\n]\n");
    assert_err(&env("./data:data"), 5, Some("env.mounts"), "not absolute");
    assert_err(
        &env("./data:/data:rx"),
        5,
        Some("env.mounts"),
        "the option `rx`",
    );
    assert_err(
        &env("./data"),
        5,
        Some("env.mounts"),
        "not SOURCE:CONTAINER",
    );
    assert_err(&env(":/data"), 5, Some("env.mounts"), "empty source");
    assert_err(&env("~/data:/data"), 5, Some("env.mounts"), "not expanded");
    assert_err(
        &env("${HOME}/x:/data"),
        5,
        Some("env.mounts"),
        "not expanded",
    );
    assert_err(
        &env("-vol:/data"),
        5,
        Some("env.mounts"),
        "not a valid volume name",
    );
    assert_err(
        "[env]\nimage = \"d\"\n[services.db]\nimage = \"d\"\nvolumes = [\"data\"]\n",
        5,
        Some("services.db.volumes"),
        "not SOURCE:CONTAINER",
    );
}

#[test]
fn ready_needs_exactly_one_check() {
    let svc =
        |r: &str| format!("[env]\nimage = \"d\"\n[services.db]\nimage = \"d\"\nready = {r}\n");
    assert_err(
        &svc("{ timeout = 5 }"),
        5,
        Some("services.db.ready"),
        "neither `command` nor `tcp`",
    );
    assert_err(
        &svc("{ tcp = 5, command = \"true\" }"),
        5,
        Some("services.db.ready"),
        "both `command` and `tcp`",
    );
}

#[test]
fn load_reads_the_project_root_and_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = Manifest::load(dir.path()).unwrap_err();
    assert!(matches!(e, ManifestError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("run `hutch init`"), "{e}");
    std::fs::write(
        dir.path().join(MANIFEST_FILE),
        "[env]\nimage = \"d\"\nmounts = [\"./x:/x\"]\nports = [\"1:2:3:4\"]\n",
    )
    .unwrap();
    let e = Manifest::load(dir.path()).unwrap_err().to_string();
    let want = format!(
        "{}:4: key `env.ports`: ",
        dir.path().join("hutch.toml").display()
    );
    assert!(e.starts_with(&want), "{e}");
    std::fs::write(
        dir.path().join(MANIFEST_FILE),
        "[env]\nimage = \"d\"\nmounts = [\"./x:/x\"]\n",
    )
    .unwrap();
    let m = Manifest::load(dir.path()).unwrap();
    assert_eq!(m.root, dir.path());
    assert_eq!(
        m.env.mounts[0],
        Mount::Bind {
            host: dir.path().join("x"),
            container: "/x".into(),
            read_only: false
        }
    );
}

const FULL: &str = r#"
platforms = ["linux/arm64"]
[env]
build = "Containerfile"
args = { A = "1" }
mounts = ["./cache:/cache", "/etc/ssl:/etc/ssl:ro", "vol:/vol"]
env = { X = "1" }
ports = ["8080:80"]
setup = ["make deps"]
[services.db]
image = "postgres:16"
command = "postgres"
volumes = ["pg:/var/lib/postgresql/data"]
ready = { tcp = 5432 }
ports = ["5432:5432"]
"#;

#[test]
fn setup_hash_is_the_sha256_of_the_setup_commands_only() {
    let m = ok(FULL);
    let want = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(br#"["make deps"]"#))
    );
    assert_eq!(m.setup_hash().as_str(), want);
    // Another change leaves it; another setup changes it.
    let other = ok(&FULL.replace("X = \"1\"", "X = \"2\""));
    assert_eq!(other.setup_hash(), m.setup_hash());
    assert_ne!(other.hash(), m.hash());
    let other = ok(&FULL.replace("make deps", "make deps "));
    assert_ne!(other.setup_hash(), m.setup_hash());
    assert_ne!(other.hash(), m.hash());
    // Order counts: the commands run in order.
    let ab = ok("[env]\nimage = \"d\"\nsetup = [\"a\", \"b\"]\n");
    let ba = ok("[env]\nimage = \"d\"\nsetup = [\"b\", \"a\"]\n");
    assert_ne!(ab.setup_hash(), ba.setup_hash());
}

#[test]
fn hash_ignores_form_and_place_and_sees_every_value() {
    let m = ok(FULL);
    // Comments, order of keys, defaults written out: the same manifest.
    let same = r#"
# a comment
[services.db]
ports = ["5432:5432"]
ready = { tcp = 5432, timeout = 60 }
volumes = ["pg:/var/lib/postgresql/data"]
command = "postgres"
image = "postgres:16"
[env]
setup = ["make deps"]
ports = ["127.0.0.1:8080:80/tcp"]
env = { X = "1" }
mounts = ["cache:/cache", "/etc/ssl:/etc/ssl:ro", "vol:/vol"]
context = "."
profile = "dev"
args = { A = "1" }
build = "./Containerfile"
"#
    .replace("\"cache:/cache\"", "\"./cache/../cache:/cache\"");
    let same = format!("platforms = [\"linux/arm64\"]\n{same}");
    assert_eq!(ok(&same).canonical(), m.canonical());
    assert_eq!(ok(&same).hash(), m.hash());
    // The same project in another directory.
    let elsewhere = Manifest::parse_in(FULL, "hutch.toml", Path::new("/home/b/p")).unwrap();
    assert_eq!(elsewhere.hash(), m.hash());
    // Every value counts (each edit must change the hash; the control above
    // shows equal manifests hash the same).
    let edits = [
        ("linux/arm64", "linux/amd64"),
        ("build = \"Containerfile\"", "build = \"Dockerfile\""),
        ("A = \"1\"", "A = \"2\""),
        ("./cache:/cache", "./cache:/cache2"),
        ("/etc/ssl:ro", "/etc/ssl:rw"),
        ("vol:/vol", "./vol:/vol"),
        ("8080:80", "8081:80"),
        ("postgres:16", "postgres:17"),
        ("command = \"postgres\"", "command = [\"postgres\"]"),
        ("pg:/var", "pg2:/var"),
        ("tcp = 5432", "tcp = 5433"),
        ("tcp = 5432", "tcp = 5432, timeout = 5"),
        ("\"5432:5432\"", "\"5433:5432\""),
        ("[services.db]", "[services.db2]"),
        ("[env]", "[env]\nshell = \"/bin/sh\""),
        ("[env]", "[env]\nworkdir = \"/w\""),
        ("[env]", "[env]\nprofile = \"default\""),
        ("[env]", "[env]\ntarget = \"t\""),
    ];
    for (from, to) in edits {
        assert!(FULL.contains(from), "{from}");
        let edited = ok(&FULL.replacen(from, to, 1));
        assert_ne!(edited.hash(), m.hash(), "{from} -> {to}");
    }
}

#[test]
fn the_template_parses_and_shows_every_key() {
    let m = Manifest::parse(&template(DEFAULT_IMAGE), "hutch.toml").unwrap();
    assert_eq!(m.env.source, ImageSource::Image(DEFAULT_IMAGE.into()));
    assert!(m.services.is_empty());
    let m = ok(&template("registry.example:5000/team/dev:1"));
    assert_eq!(
        m.env.source,
        ImageSource::Image("registry.example:5000/team/dev:1".into())
    );
    // Uncomment every line written as TOML ("# key = ..." or "# [table]").
    let uncommented: String = template(DEFAULT_IMAGE)
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("# ").unwrap_or("");
            let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            if is_key || rest.starts_with("[services.") {
                rest.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    for key in [
        "platforms",
        "image",
        "build",
        "context",
        "args",
        "target",
        "profile",
        "mounts",
        "env",
        "ports",
        "shell",
        "setup",
        "workdir",
        "command",
        "volumes",
        "ready",
        "depends_on",
    ] {
        assert!(
            uncommented
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))),
            "the template does not show `{key}`"
        );
    }
    // Every key shown is valid: with images (the build keys dropped) ...
    let build_keys = ["build = ", "context = ", "args = ", "target = "];
    let with_images: String = uncommented
        .lines()
        .filter(|l| !build_keys.iter().any(|k| l.starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect();
    let m = ok(&with_images);
    assert_eq!(m.services.len(), 2);
    assert!(m.services["db"].ready.is_some() && !m.env.setup.is_empty());
    // ... and with builds (each `image` dropped where its table has a build).
    let mut with_builds = String::new();
    let mut table: Vec<&str> = Vec::new();
    let flush = |table: &mut Vec<&str>, out: &mut String| {
        let has_build = table.iter().any(|l| l.starts_with("build = "));
        for l in table.drain(..) {
            if !(has_build && l.starts_with("image = ")) {
                out.push_str(l);
                out.push('\n');
            }
        }
    };
    for l in uncommented.lines() {
        if l.starts_with('[') {
            flush(&mut table, &mut with_builds);
        }
        table.push(l);
    }
    flush(&mut table, &mut with_builds);
    let m = ok(&with_builds);
    assert!(matches!(m.env.source, ImageSource::Build(_)));
    assert!(matches!(m.services["db"].source, ImageSource::Build(_)));
    assert!(matches!(m.services["cache"].source, ImageSource::Image(_)));
}

#[test]
fn write_template_refuses_to_overwrite_and_checks_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("new/project");
    let path = write_template(&project, Some("busybox:1.36")).unwrap();
    assert_eq!(path, project.join(MANIFEST_FILE));
    let m = Manifest::load(&project).unwrap();
    assert_eq!(m.env.source, ImageSource::Image("busybox:1.36".into()));
    let before = std::fs::read(&path).unwrap();
    let e = write_template(&project, None).unwrap_err().to_string();
    assert!(
        e.contains("exists already") && e.contains("does not overwrite"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let other = dir.path().join("other");
    let e = write_template(&other, Some("Bad Image"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--image Bad Image"), "{e}");
    assert!(!other.join(MANIFEST_FILE).exists());
}

#[test]
fn a_service_may_not_take_the_environments_name() {
    let (_, _, message, shown) = err("[env]\nimage = \"x\"\n[services.env]\nimage = \"y\"\n");
    assert!(message.contains("may not be named `env`"), "{shown}");
    ok("[env]\nimage = \"x\"\n[services.envoy]\nimage = \"y\"\n");
}
