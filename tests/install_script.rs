//! install.sh as a new user meets it: it checks the Rust toolchain before
//! building (Debian 12's own cargo is too old) and says what to install,
//! prefers a new enough rustup cargo in ~/.cargo/bin, and installs a
//! binary without debug information. A fake `cargo` stands in for the
//! toolchain (it "builds" by copying the hutch under test), so the test
//! takes no build time; everything else is the real script.

mod common;

use common::{TestStore, describe};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const INSTALL_SH: &str = include_str!("../install.sh");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

/// A cargo that reports `version` and builds by copying `built`.
fn fake_cargo(dir: &Path, version: &str, built: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         case \"$1\" in\n\
         --version) echo 'cargo {version} (fake 2024-01-01)' ;;\n\
         build) mkdir -p target/release && cp '{built}' target/release/hutch ;;\n\
         metadata) printf '{{\"target_directory\":\"%s/target\"}}\\n' \"$PWD\" ;;\n\
         *) echo \"fake cargo: $*\" >&2; exit 2 ;;\n\
         esac\n",
        built = built.display()
    );
    let path = dir.join("cargo");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Setup {
    st: TestStore,
    src: PathBuf,
    prefix: PathBuf,
    path_bin: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let st = TestStore::new();
        let src = st.tmp().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("install.sh"), INSTALL_SH).unwrap();
        std::fs::write(src.join("Cargo.toml"), CARGO_TOML).unwrap();
        let prefix = st.tmp().join("prefix");
        let path_bin = st.tmp().join("path-bin");
        std::fs::create_dir_all(&path_bin).unwrap();
        Setup {
            st,
            src,
            prefix,
            path_bin,
        }
    }

    fn run(&self) -> std::process::Output {
        self.st
            .command("bash")
            .arg(self.src.join("install.sh"))
            .env("PREFIX", &self.prefix)
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.path_bin.display()),
            )
            .output()
            .unwrap()
    }

    fn installed(&self) -> PathBuf {
        self.prefix.join("bin/hutch")
    }
}

/// Whether the ELF file has a `.debug_info` section (readelf, from
/// binutils, which the Rust toolchain's linker needs anyway).
fn has_debug_info(path: &Path) -> bool {
    let out = std::process::Command::new("readelf")
        .args(["-S", "-W"])
        .arg(path)
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).contains(" .debug_info ")
}

#[test]
fn an_old_cargo_is_refused_with_the_rustup_command() {
    let s = Setup::new();
    fake_cargo(&s.path_bin, "1.63.0", &common::hutch_bin());
    let out = s.run();
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Rust >= 1.91"), "{err}");
    assert!(err.contains("1.63.0"), "{err}");
    assert!(err.contains("sh.rustup.rs"), "{err}");
    assert!(!s.installed().exists(), "nothing installed");
    // Without any cargo (where the host has none of its own).
    if !Path::new("/usr/bin/cargo").exists() && !Path::new("/usr/local/bin/cargo").exists() {
        std::fs::remove_file(s.path_bin.join("cargo")).unwrap();
        let out = s.run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(
            err.contains("cargo not found") && err.contains("sh.rustup.rs"),
            "{err}"
        );
    }
}

#[test]
fn rustups_cargo_is_preferred_and_the_binary_is_stripped() {
    let s = Setup::new();
    let built = common::hutch_bin();
    // Control: the binary under test carries debug information.
    assert!(
        has_debug_info(&built),
        "the test binary has no debug info to strip"
    );
    fake_cargo(&s.path_bin, "1.63.0", &built);
    fake_cargo(&s.st.home().join(".cargo/bin"), "1.91.1", &built);
    let out = s.run();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(".cargo/bin/cargo (1.91.1)"), "{text}");
    assert!(text.contains("hutch is ready"), "{text}");
    let installed = s.installed();
    assert!(
        !has_debug_info(&installed),
        "installed binary keeps debug info"
    );
    assert!(
        std::fs::metadata(&installed).unwrap().len() < std::fs::metadata(&built).unwrap().len()
    );
    let v = std::process::Command::new(&installed)
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).starts_with("hutch "));
}

#[test]
fn manual_pages_and_completions_are_installed_under_the_prefix() {
    let s = Setup::new();
    fake_cargo(&s.path_bin, "1.91.1", &common::hutch_bin());
    let share = s.prefix.join("share");
    // Control: nothing there before the installation.
    assert!(!share.exists());
    let out = s.run();
    assert!(out.status.success(), "{}", describe(&out));
    let page = std::fs::read_to_string(share.join("man/man1/hutch-run.1")).unwrap();
    assert!(page.contains(".TH hutch-run 1"), "{page}");
    assert!(share.join("man/man1/hutch.1").exists());
    let bash = std::fs::read_to_string(share.join("bash-completion/completions/hutch")).unwrap();
    assert!(bash.contains("complete -F _hutch"), "{bash}");
    let zsh = std::fs::read_to_string(share.join("zsh/site-functions/_hutch")).unwrap();
    assert!(zsh.starts_with("#compdef hutch"));
    let fish = std::fs::read_to_string(share.join("fish/vendor_completions.d/hutch.fish")).unwrap();
    assert!(fish.contains("complete -c hutch"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("installed manual pages"), "{text}");
}
