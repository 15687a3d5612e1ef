//! `hutch lock` (issue 17) as the unprivileged test user, against a local
//! registry: every image of a project (the environment's, a service's, a
//! build's base images) pinned per platform in hutch.lock; a tag moved on
//! the registry afterwards changes nothing until `--update`; `--frozen`
//! refuses a stale or incomplete lock; `hutch verify` names the first path
//! where the environment differs from the locked tree when the store keeps
//! that tree's entry list. Test names start with `project_lock_` or
//! `project_verify_`.

mod common;

use common::registry::{push, registry};
use common::{TestStore, describe, fixture};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn lock(st: &TestStore, dir: &Path, extra: &[&str]) -> std::process::Output {
    st.hutch()
        .args(["lock", "--tls-verify=false", "--dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn lock_ok(st: &TestStore, dir: &Path, extra: &[&str]) -> String {
    let out = lock(st, dir, extra);
    assert!(
        out.status.success(),
        "hutch lock {extra:?}\n{}",
        describe(&out)
    );
    std::fs::read_to_string(dir.join("hutch.lock")).unwrap()
}

#[test]
fn project_lock_pins_images_and_keeps_them_until_update() {
    let st = TestStore::new();
    let reg = registry();
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let debian = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let d_env = push(&st, &reg, &busybox, "proj/env:1", false);
    let d_svc = push(&st, &reg, &debian, "proj/db:1", false);
    let d_base = push(&st, &reg, &busybox, "proj/base:1", false);
    let r = |name: &str| format!("127.0.0.1:{}/{name}", reg.port);
    let dir = st.tmp().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "hutch.toml",
        &format!(
            "[env]\nimage = \"{}\"\n\n[services.db]\nbuild = \"Containerfile.db\"\n\n\
             [services.web]\nimage = \"{}\"\n",
            r("proj/env:1"),
            r("proj/db:1")
        ),
    );
    write(
        &dir,
        "Containerfile.db",
        &format!("ARG BASE={}\nFROM $BASE\nRUN true\n", r("proj/base:1")),
    );
    let text = lock_ok(&st, &dir, &[]);
    let host = if cfg!(target_arch = "x86_64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    for (name, digest) in [
        ("proj/env:1", &d_env),
        ("proj/db:1", &d_svc),
        ("proj/base:1", &d_base),
    ] {
        let line = format!("[images.\"{}\"]\n\"{host}\" = \"{digest}\"", r(name));
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    assert!(text.starts_with("# hutch.lock"), "{text}");

    // The tag moves on the registry: the lock keeps its pin ...
    let moved = push(&st, &reg, &debian, "proj/env:1", false);
    assert_ne!(moved, d_env);
    assert_eq!(
        lock_ok(&st, &dir, &[]),
        text,
        "a plain lock re-resolved a pin"
    );
    // ... until --update names it; the other pins stay.
    let updated = lock_ok(&st, &dir, &["--update", &r("proj/env:1")]);
    let pin = |text: &str, name: &str| {
        let head = format!("[images.\"{}\"]\n\"{host}\" = \"", r(name));
        let at = text
            .find(&head)
            .unwrap_or_else(|| panic!("{name} not in\n{text}"));
        text[at + head.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(pin(&updated, "proj/env:1"), moved);
    assert_eq!(pin(&updated, "proj/db:1"), d_svc);
    assert_eq!(pin(&updated, "proj/base:1"), d_base);
    // A section's name stands for its images: `--update env` from the
    // first lock gives the same; an unknown name lists what there is.
    write(&dir, "hutch.lock", &text);
    assert_eq!(lock_ok(&st, &dir, &["--update", "env"]), updated);
    let out = lock(&st, &dir, &["--update", "nosuch"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its sections: env, db, web"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("hutch.lock")).unwrap(),
        updated
    );

    // --frozen: a current lock passes and is not written.
    let out = lock(&st, &dir, &["--frozen"]);
    assert!(out.status.success(), "{}", describe(&out));
    // A changed hutch.toml makes it stale: refused with the fix, file kept.
    let toml = std::fs::read_to_string(dir.join("hutch.toml")).unwrap();
    write(
        &dir,
        "hutch.toml",
        &toml.replace("[env]\n", "[env]\nsetup = [\"true\"]\n"),
    );
    let out = lock(&st, &dir, &["--frozen"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale") && err.contains("`hutch lock`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hutch.lock")).unwrap(),
        updated
    );
    // `hutch lock` then fits the lock to the new file, keeping the pins.
    let relocked = lock_ok(&st, &dir, &[]);
    assert_ne!(relocked, updated);
    assert_eq!(pin(&relocked, "proj/env:1"), moved);
    assert_eq!(pin(&relocked, "proj/db:1"), d_svc);
    assert!(lock(&st, &dir, &["--frozen"]).status.success());
}

#[test]
fn project_lock_errors_name_the_problem() {
    let st = TestStore::new();
    let reg = registry();
    let dir = st.tmp().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    // No hutch.toml.
    let out = lock(&st, &dir, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hutch init"),
        "{}",
        describe(&out)
    );
    // An image the registry does not have: error, no lock written.
    write(
        &dir,
        "hutch.toml",
        &format!("[env]\nimage = \"127.0.0.1:{}/nothing/here:1\"\n", reg.port),
    );
    let out = lock(&st, &dir, &[]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing/here"),
        "{}",
        describe(&out)
    );
    assert!(!dir.join("hutch.lock").exists());
    // --frozen without a lock.
    let out = lock(&st, &dir, &["--frozen"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hutch.lock"));
    // A damaged lock stops a plain lock (with its line), --update rewrites it.
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    push(&st, &reg, &busybox, "nothing/here:1", false);
    write(&dir, "hutch.lock", "version = 1\nmanifest = [\n");
    let out = lock(&st, &dir, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hutch.lock:"),
        "{}",
        describe(&out)
    );
    lock_ok(&st, &dir, &["--update"]);
}

#[test]
fn project_lock_records_the_rootfs_and_verify_checks_it_in_other_stores() {
    let a = TestStore::new();
    let reg = registry();
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let debian = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let pinned_digest = push(&a, &reg, &busybox, "proj/env:1", false);
    let reference = format!("127.0.0.1:{}/proj/env:1", reg.port);
    let dir = a.tmp().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "hutch.toml",
        &format!("[env]\nimage = \"{reference}\"\n"),
    );
    let text = lock_ok(&a, &dir, &[]);
    let pinned = format!("{reference}@{pinned_digest}");
    assert!(
        text.contains(&format!("[env]\nimage = \"{pinned}\"\nrootfs = \"sha256:")),
        "{text}"
    );
    let rootfs = text
        .split("rootfs = \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // The same digest `verify --image` computes for the pinned image.
    assert_eq!(a.run_ok(["verify", "--image", &pinned]).trim(), rootfs);

    let verify = |st: &TestStore| {
        st.hutch()
            .args(["verify", "--tls-verify=false", "--dir"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    // Another store pulls the pinned image and finds the same tree.
    let b = TestStore::new();
    let out = verify(&b);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), rootfs);
    // The tag moves on the registry: a third store still gets the pinned
    // image, not the tag's new one.
    push(&a, &reg, &debian, "proj/env:1", false);
    let c = TestStore::new();
    let out = verify(&c);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), rootfs);
    // A lock recording another tree: verify says so, exit 1.
    let other = format!("sha256:{}", "ab".repeat(32));
    write(&dir, "hutch.lock", &text.replace(&rootfs, &other));
    let out = verify(&b);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&rootfs) && err.contains(&other), "{err}");
    // A stale lock is refused with the fix.
    write(&dir, "hutch.lock", &text);
    write(
        &dir,
        "hutch.toml",
        &format!("[env]\nimage = \"{reference}\"\nsetup = [\"true\"]\n"),
    );
    let out = verify(&b);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"));
}

/// The layer dir (`layers/sha256/<hex>/root`) of `st` holding `path`.
fn layer_with(st: &TestStore, path: &str) -> std::path::PathBuf {
    let layers = st.root().join("layers/sha256");
    let mut found: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path().join("root"))
        .filter(|root| root.join(path).is_file())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one layer of {} has {path}",
        layers.display()
    );
    found.pop().unwrap()
}

/// Change the content of `path` in the store's unpacked layer (what a
/// damaged or tampered store looks like).
fn damage(st: &TestStore, path: &str, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    let file = layer_with(st, path).join(path);
    for p in [file.parent().unwrap(), file.as_path()] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
    }
    std::fs::write(&file, content).unwrap();
}

#[test]
fn project_verify_diff_names_the_first_changed_path() {
    let a = TestStore::new();
    let reg = registry();
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let pinned_digest = push(&a, &reg, &busybox, "proj/env:1", false);
    let reference = format!("127.0.0.1:{}/proj/env:1", reg.port);
    let dir = a.tmp().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "hutch.toml",
        &format!("[env]\nimage = \"{reference}\"\n"),
    );
    let text = lock_ok(&a, &dir, &[]);
    let rootfs = text
        .split("rootfs = \"sha256:")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // `hutch lock` kept the locked tree's entry list in the store.
    let index = a.root().join("rootfs-index").join(&rootfs);
    assert!(index.is_file(), "{} after hutch lock", index.display());
    let verify = |st: &TestStore| {
        st.hutch()
            .args(["verify", "--tls-verify=false", "--dir"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = verify(&a);
    assert!(out.status.success(), "{}", describe(&out));

    // One file of the environment's layer changes in the store: verify
    // fails and names it.
    damage(&a, "etc/passwd", "root:x:0:0:tampered:/root:/bin/sh\n");
    let out = verify(&a);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the environment's root filesystem differs from hutch.lock's first at /etc/passwd \
             (content differs (123 bytes, sha256:"
        ),
        "{err}"
    );
    assert!(!err.contains("not in this store"), "{err}");
    // The stdout digest is the damaged tree's, not the lock's.
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        found.starts_with("sha256:") && !found.ends_with(&rootfs),
        "{found}"
    );
    // Only the lock's tree is kept, never the one found.
    let kept: Vec<_> = std::fs::read_dir(a.root().join("rootfs-index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept, std::slice::from_ref(&rootfs));

    // A damaged entry list is as good as none: no path, no crash.
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&index, &bytes).unwrap();
    let out = verify(&a);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the list of hutch.lock's tree is not in this store")
            && err.contains("hutch check --store")
            && !err.contains("/etc/passwd"),
        "{err}"
    );

    // Control: another store that pulled the pinned image itself (so never
    // computed the locked tree) and whose layer is damaged the same way
    // says it cannot name a path, and names none.
    let b = TestStore::new();
    b.run_ok([
        "pull",
        "--tls-verify=false",
        &format!("{reference}@{pinned_digest}"),
    ]);
    damage(&b, "etc/passwd", "root:x:0:0:tampered:/root:/bin/sh\n");
    let out = verify(&b);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the list of hutch.lock's tree is not in this store")
            && err.contains("hutch check --store"),
        "{err}"
    );
    assert!(
        !err.contains("/etc/passwd") && !err.contains("first at"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), found);
    assert!(!b.root().join("rootfs-index").join(&rootfs).exists());
}
