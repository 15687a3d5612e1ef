//! The profile's locks against the flags of a run: which flags give the
//! sandbox more than the profile does ([`weakenings`]), refused where the
//! profile locks the key and warned about otherwise ([`check_locks`]),
//! before anything is pulled or started.

use super::plan::{RunRequest, run_mounts};
use crate::profile::locks::Weakening;
use crate::profile::{self, NetworkMode, Profile, RunMount};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Refuse the flags that weaken keys the profile locks (before anything
/// is pulled or started); print a warning for those that weaken keys it
/// does not lock. Which flags can weaken is listed in `FLAG_EFFECTS` in
/// src/cli/run.rs's tests.
pub(crate) fn check_locks(store: &Store, req: &RunRequest, profile: &Profile) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let found = weakenings(req, profile, &cwd, &home, store);
    if let Err(refused) = profile::locks::enforce(profile, &found) {
        bail!("{refused}");
    }
    // A project's named volumes hold the store's data, not the host's
    // files, and its hutch.toml asks for them: no warning. Everything else
    // (a host path beyond the profile's) is warned about as for `-v`.
    let volumes = if req.from_manifest {
        named_volume_flags(req)
    } else {
        Vec::new()
    };
    let shown: Vec<_> = found
        .into_iter()
        .filter(|w| !volumes.contains(&w.flag))
        .collect();
    for w in profile::locks::enforce(profile, &shown).unwrap_or_default() {
        eprintln!("{w}");
    }
    Ok(())
}

/// The flags (as typed) of the request's named volumes.
fn named_volume_flags(req: &RunRequest) -> Vec<String> {
    run_mounts(req)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, m)| matches!(m, RunMount::Volume(_)))
        .map(|(flag, _)| flag)
        .collect()
}

/// How open a network mode is: none < slirp < host.
fn openness(mode: NetworkMode) -> u8 {
    match mode {
        NetworkMode::None => 0,
        NetworkMode::Slirp => 1,
        NetworkMode::Host => 2,
    }
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML array of strings.
fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

/// The host directories the profile already shows the sandbox, canonical,
/// with whether they are read-only: its mounts and, with `home = true`,
/// the home directory. Paths that cannot be resolved are left out.
fn profile_host_paths(profile: &Profile, cwd: &Path, home: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    if profile.filesystem.home
        && let Ok(h) = std::fs::canonicalize(home)
    {
        out.push((h, false));
    }
    for m in profile.mount_specs(cwd, home).unwrap_or_default() {
        if let Ok(h) = std::fs::canonicalize(&m.host) {
            out.push((h, m.read_only));
        }
    }
    out
}

/// The flags of `req` that give the sandbox more than `profile` does, one
/// [`Weakening`] per flag and key; [`crate::profile::locks::enforce`]
/// decides whether they are refused or warned about.
///
/// Every `hutch run` flag is classified in src/cli/run.rs; those that can
/// weaken are checked here:
/// - `--network MODE`: more open than the profile's mode (none < slirp <
///   host) weakens `network.mode`; `--network slirp:allow_host_loopback=true`
///   weakens `network.allow_host_loopback` where the profile's is false.
/// - `-v HOST:CTR[:ro]` and `--mount type=bind` weaken `filesystem.mounts`
///   unless HOST resolves
///   (symlinks followed) to a path at or below one the profile already
///   mounts (or its home with `home = true`), read-write or, for a `:ro`
///   volume, either way: such a volume shows nothing new of the host.
///   A named volume (`-v NAME:CTR`, `--mount type=volume`) is a bind mount
///   of its data directory in the store, checked the same way (so it
///   weakens unless a profile mount covers the store's volumes), and the
///   grant names that directory. `--mount type=tmpfs` is fresh memory, as
///   `--tmpfs`.
pub(crate) fn weakenings(
    req: &RunRequest,
    profile: &Profile,
    cwd: &Path,
    home: &Path,
    store: &Store,
) -> Vec<Weakening> {
    let mut out = Vec::new();
    let net = &profile.network;
    let mode = req.network.unwrap_or(net.mode);
    if openness(mode) > openness(net.mode) {
        out.push(Weakening {
            // Another container's network counts as slirp: it may be one.
            flag: match &req.network_container {
                Some(c) => format!("--network container:{c}"),
                None => format!("--network {mode}"),
            },
            key: "network.mode",
            profile_value: quoted(net.mode.as_str()),
            grant: format!("mode = {}", quoted(mode.as_str())),
        });
    }
    if mode == NetworkMode::Slirp
        && req.allow_host_loopback == Some(true)
        && !net.allow_host_loopback
    {
        out.push(Weakening {
            flag: "--network slirp:allow_host_loopback=true".into(),
            key: "network.allow_host_loopback",
            profile_value: "false".into(),
            grant: "allow_host_loopback = true".into(),
        });
    }
    let shown = profile_host_paths(profile, cwd, home);
    // A malformed -v or --mount is refused by `resolve` with its own
    // message.
    for (flag, m) in run_mounts(req).unwrap_or_default() {
        // A named volume is a bind mount of its data directory.
        let (host, container, read_only) = match m {
            RunMount::Bind(b) => (PathBuf::from(&b.host), b.container, b.read_only),
            RunMount::Volume(v) => match store.volume_data(&v.name) {
                Ok(data) => (data, v.container, v.read_only),
                Err(_) => continue,
            },
            RunMount::Tmpfs(_) => continue,
        };
        let covered = std::fs::canonicalize(&host).is_ok_and(|host| {
            shown
                .iter()
                .any(|(dir, ro)| host.starts_with(dir) && (read_only || !ro))
        });
        if !covered {
            let mut mounts = profile.filesystem.mounts.clone();
            let ro = if read_only { ":ro" } else { "" };
            mounts.push(format!("{}:{container}{ro}", host.display()));
            out.push(Weakening {
                flag,
                key: "filesystem.mounts",
                profile_value: quoted_list(&profile.filesystem.mounts),
                grant: format!("mounts = {}", quoted_list(&mounts)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> Profile {
        crate::profile::load(name).unwrap()
    }

    fn keys(w: &[Weakening]) -> Vec<&str> {
        w.iter().map(|w| w.key).collect()
    }

    #[test]
    fn network_flags_that_open_more_weaken() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let (cwd, home) = (Path::new("/"), Path::new("/"));
        let req = |mode, lo| RunRequest {
            network: Some(mode),
            allow_host_loopback: lo,
            ..RunRequest::default()
        };
        let untrusted = profile("untrusted");
        let default = profile("default");
        let w = weakenings(&req(NetworkMode::Host, None), &untrusted, cwd, home, &store);
        assert_eq!(keys(&w), ["network.mode"]);
        assert_eq!(w[0].flag, "--network host");
        assert_eq!(w[0].profile_value, "\"none\"");
        assert_eq!(w[0].grant, "mode = \"host\"");
        let w = weakenings(
            &req(NetworkMode::Slirp, Some(true)),
            &untrusted,
            cwd,
            home,
            &store,
        );
        assert_eq!(keys(&w), ["network.mode", "network.allow_host_loopback"]);
        let w = weakenings(
            &req(NetworkMode::Slirp, Some(true)),
            &default,
            cwd,
            home,
            &store,
        );
        assert_eq!(keys(&w), ["network.allow_host_loopback"]);
        // Tightening, or asking for what the profile has, is no weakening.
        for (mode, lo) in [
            (NetworkMode::None, None),
            (NetworkMode::Slirp, None),
            (NetworkMode::Slirp, Some(false)),
        ] {
            assert!(weakenings(&req(mode, lo), &default, cwd, home, &store).is_empty());
        }
        assert!(weakenings(&RunRequest::default(), &untrusted, cwd, home, &store).is_empty());
    }

    #[test]
    fn volumes_outside_the_profiles_mounts_weaken() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let work = d.path().join("work");
        let other = d.path().join("other");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        // A symlink inside the work directory that leads out of it.
        std::os::unix::fs::symlink(&other, work.join("out")).unwrap();
        let vols = |v: &[String]| RunRequest {
            volumes: v.to_vec(),
            ..RunRequest::default()
        };
        let home = d.path().join("home");
        let untrusted = profile("untrusted"); // mounts ${CWD}:${CWD}
        let w = |v: String| weakenings(&vols(&[v]), &untrusted, &work, &home, &store);
        let (wk, ot) = (work.display(), other.display());
        assert!(w(format!("{wk}:/w")).is_empty());
        assert!(w(format!("{wk}/sub:/s:ro")).is_empty());
        let found = w(format!("{ot}:/o"));
        assert_eq!(keys(&found), ["filesystem.mounts"]);
        assert_eq!(found[0].profile_value, "[\"${CWD}:${CWD}\"]");
        assert_eq!(
            found[0].grant,
            format!("mounts = [\"${{CWD}}:${{CWD}}\", \"{ot}:/o\"]")
        );
        assert_eq!(keys(&w(format!("{wk}/out:/o"))), ["filesystem.mounts"]);
        assert_eq!(keys(&w("/nonexistent-x:/x".into())), ["filesystem.mounts"]);
        // Under a read-only profile mount, only a :ro volume is covered.
        let mut ro = untrusted.clone();
        ro.filesystem.mounts = vec!["${CWD}:/w:ro".into()];
        let w = |v: String| weakenings(&vols(&[v]), &ro, &work, &home, &store);
        assert!(w(format!("{wk}/sub:/s:ro")).is_empty());
        assert_eq!(keys(&w(format!("{wk}/sub:/s"))), ["filesystem.mounts"]);
        // home = true covers the home directory.
        std::fs::create_dir_all(home.join("x")).unwrap();
        let mut h = profile("default");
        h.filesystem.home = true;
        let v = format!("{}:/x", home.join("x").display());
        assert!(weakenings(&vols(std::slice::from_ref(&v)), &h, &work, &home, &store).is_empty());
        let default = profile("default");
        assert_eq!(
            keys(&weakenings(&vols(&[v]), &default, &work, &home, &store)),
            ["filesystem.mounts"]
        );
    }

    #[test]
    fn named_volumes_and_mount_flags_weaken_like_host_paths() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let (work, home) = (d.path().join("work"), d.path().join("home"));
        std::fs::create_dir_all(&work).unwrap();
        let req = |v: &[&str], m: &[&str]| RunRequest {
            volumes: v.iter().map(|s| s.to_string()).collect(),
            mounts: m.iter().map(|s| s.to_string()).collect(),
            ..RunRequest::default()
        };
        let untrusted = profile("untrusted");
        let w = |r: RunRequest| weakenings(&r, &untrusted, &work, &home, &store);
        // A named volume, new or existing, is storage outside the profile.
        let data = store.volume_data("data").unwrap();
        let found = w(req(&["data:/d:ro"], &[]));
        assert_eq!(keys(&found), ["filesystem.mounts"]);
        assert_eq!(found[0].flag, "-v data:/d:ro");
        assert_eq!(
            found[0].grant,
            format!(
                "mounts = [\"${{CWD}}:${{CWD}}\", \"{}:/d:ro\"]",
                data.display()
            )
        );
        store
            .create_volume(Some("data"), Default::default())
            .unwrap();
        let found = w(req(&[], &["type=volume,source=data,target=/d"]));
        assert_eq!(keys(&found), ["filesystem.mounts"]);
        assert_eq!(found[0].flag, "--mount type=volume,source=data,target=/d");
        // --mount type=bind is checked as -v HOST:CTR is.
        let wk = work.display();
        assert!(w(req(&[], &[&format!("type=bind,src={wk},dst=/w")])).is_empty());
        assert_eq!(
            keys(&w(req(&[], &["type=bind,src=/etc,dst=/e,ro"]))),
            ["filesystem.mounts"]
        );
        // A tmpfs shows nothing of the host.
        assert!(w(req(&[], &["type=tmpfs,target=/t"])).is_empty());
        // A profile that mounts the store's volumes covers them.
        let mut covering = untrusted.clone();
        covering.filesystem.mounts = vec![format!("{}:/vols", d.path().join("s").display())];
        assert!(weakenings(&req(&["data:/d"], &[]), &covering, &work, &home, &store).is_empty());
    }
}
