//! Garbage collection: remove blobs and unpacked layers that no image needs.
//!
//! Roots are every manifest in refs.json: current tags, their history (so
//! `rollback` keeps working) and untagged images. Runs under the exclusive
//! store lock, so no import is half-way while it decides what is garbage;
//! everything left in `tmp/` is then debris of a killed process, except the
//! files of a container that `hutch rm` (which does not take the store
//! lock) is removing: tmp names carry their writer's pid, and a live one is
//! left alone. Removal never follows symlinks and copes with any tree a
//! container can build (see `remove.rs`); whatever cannot be removed is
//! reported in [`GcReport::warnings`] and the rest of the collection goes on.

use super::Store;
use super::remove::remove_tree;
use crate::oci::Digest;
use crate::store::StoredImage;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub tmp_removed: usize,
    pub history_versions_dropped: usize,
    pub bytes_freed: u64,
    /// What could not be removed (left in place; the rest went on), each
    /// naming the path and what to do.
    pub warnings: Vec<String>,
}

/// Remove a blob, a layer or a leftover: its size on disk.
fn remove_path(path: &Path) -> Result<u64> {
    Ok(remove_tree(path)?.bytes)
}

impl Store {
    /// Blobs and layers reachable from the refs.
    pub fn live_set(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let refs = self.refs()?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for manifest in refs.all_manifests() {
            blobs.insert(manifest.clone());
            // A damaged image keeps whatever of it can still be read; `check
            // --store` reports it rather than gc silently dropping data.
            if let Ok(img) = StoredImage::load(self, &manifest) {
                blobs.insert(img.config_digest.clone());
                for l in img.layers {
                    blobs.insert(l.blob);
                    layers.insert(l.diff_id);
                }
            } else if let Ok(bytes) = self.read_blob(&manifest)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                for d in referenced_digests(&v) {
                    blobs.insert(d);
                }
            }
        }
        // A container keeps the layers it runs on, even after `rmi`.
        for diff_id in self.container_layers()? {
            if let Ok(d) = Digest::parse(&diff_id) {
                layers.insert(d);
            }
        }
        // The build cache keeps the layers and blobs of the steps it
        // remembers, until `hutch prune --build-cache` forgets them.
        let (cache_blobs, cache_layers) = self.build_cache_refs()?;
        blobs.extend(cache_blobs);
        layers.extend(cache_layers);
        Ok((blobs, layers))
    }

    /// Remove what no image needs. With `drop_history`, first forget every
    /// tag version but the current one.
    pub fn gc(&self, drop_history: bool) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = GcReport::default();
        if drop_history {
            report.history_versions_dropped = self.update_refs(|r| Ok(r.drop_history()))?;
        }
        let (live_blobs, live_layers) = self.live_set()?;
        // Nothing that cannot be removed stops the rest: it is reported.
        let mut remove = |path: &Path, count: &mut usize| match remove_path(path) {
            Ok(bytes) => {
                report.bytes_freed += bytes;
                *count += 1;
            }
            Err(e) => report.warnings.push(format!("{e:#}")),
        };
        let (mut blobs, mut layers, mut leftovers) = (0, 0, 0);
        for blob in self.list_blobs()? {
            if !live_blobs.contains(&blob) {
                remove(&self.blob_path(&blob), &mut blobs);
            }
        }
        for layer in self.list_layers()? {
            if !live_layers.contains(&layer) {
                remove(&self.layer_dir(&layer), &mut layers);
            }
        }
        let tmp = self.tmp_dir();
        for entry in
            std::fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", tmp.display()))?;
            // `hutch rm` removes a container's files from tmp/ without the
            // store lock: one that still runs is not disturbed.
            if let Some(pid) = entry.file_name().to_str().and_then(writer_pid)
                && is_other_live_process(pid)
            {
                tracing::debug!(
                    "{} is still being written by process {pid}",
                    entry.path().display()
                );
                continue;
            }
            remove(&entry.path(), &mut leftovers);
        }
        report.blobs_removed = blobs;
        report.layers_removed = layers;
        report.tmp_removed = leftovers;
        Ok(report)
    }
}

/// Every `"digest"` value in a JSON document (fallback for damaged images).
fn referenced_digests(v: &serde_json::Value) -> Vec<Digest> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                if k == "digest"
                    && let Some(d) = val.as_str().and_then(|s| Digest::parse(s).ok())
                {
                    out.push(d);
                } else {
                    out.extend(referenced_digests(val));
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|i| out.extend(referenced_digests(i)))
        }
        _ => {}
    }
    out
}

/// What the store held before a command started writing to it.
pub struct Snapshot {
    blobs: HashSet<Digest>,
    layers: HashSet<Digest>,
}

impl Store {
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            blobs: self.list_blobs()?.into_iter().collect(),
            layers: self.list_layers()?.into_iter().collect(),
        })
    }

    /// Run `work` (which ends by moving refs) under the shared store lock;
    /// if it fails, remove the blobs and layers that appeared since it began
    /// and that no image references, so a failed load or import leaves the
    /// store as it was. The cleanup holds the exclusive lock: no other
    /// command is then half-way, so anything new and unreferenced is garbage.
    pub fn all_or_nothing<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.sweep_tmp();
        let before = self.snapshot()?;
        let shared = self.lock_shared()?;
        match work() {
            Ok(v) => Ok(v),
            Err(e) => {
                drop(shared);
                if let Err(cleanup) = self.discard_new_garbage(&before) {
                    tracing::warn!("cleaning up after a failed command: {cleanup:#}");
                }
                // A full disk not told as such where it happened.
                Err(self.explain_no_space(e, "the image"))
            }
        }
    }

    /// Remove what killed hutch processes left in `tmp/` (half-unpacked
    /// layers, unfinished blobs): names carry the writer's pid, and one
    /// that no longer runs will never finish them. Half downloads
    /// (`download-<hex>`) stay for the next pull to continue. Best effort:
    /// whatever cannot be removed now is left for `hutch prune`.
    pub fn sweep_tmp(&self) {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(writer_pid) else {
                continue;
            };
            if pid != std::process::id() && !is_other_live_process(pid) {
                tracing::debug!("removing {} left by process {pid}", entry.path().display());
                if let Err(e) = remove_path(&entry.path()) {
                    tracing::debug!("{e:#}");
                }
            }
        }
    }

    fn discard_new_garbage(&self, before: &Snapshot) -> Result<()> {
        let _lock = self.lock_exclusive()?;
        let (live_blobs, live_layers) = self.live_set()?;
        for blob in self.list_blobs()? {
            if !before.blobs.contains(&blob) && !live_blobs.contains(&blob) {
                remove_path(&self.blob_path(&blob))?;
            }
        }
        for layer in self.list_layers()? {
            if !before.layers.contains(&layer) && !live_layers.contains(&layer) {
                remove_path(&self.layer_dir(&layer))?;
            }
        }
        Ok(())
    }
}

/// Whether `pid` is a running process other than this one.
fn is_other_live_process(pid: u32) -> bool {
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a tmp name made by `unique_name` (`what-PID-NANOS-N`).
fn writer_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(4, '-');
    let (_n, _nanos, pid) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_left_by_dead_processes_is_swept_and_downloads_stay() {
        assert_eq!(writer_pid("layer-123-456-7"), Some(123));
        assert_eq!(writer_pid(&format!("download-{}", "a".repeat(64))), None);
        assert_eq!(writer_pid("blob-x-456-7"), None);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tmp = store.tmp_dir();
        // pid_max is at most 2^22: this pid cannot be running.
        std::fs::create_dir_all(tmp.join("layer-4999999-1-0/root/bin")).unwrap();
        std::fs::write(tmp.join("blob-4999999-1-1"), b"x").unwrap();
        let mine = store.tmp_path("blob");
        std::fs::write(&mine, b"y").unwrap();
        let download = tmp.join(format!("download-{}", "a".repeat(64)));
        std::fs::write(&download, b"z").unwrap();
        store.sweep_tmp();
        let mut left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        let mut want = vec![mine, download];
        want.sort();
        assert_eq!(left, want);
    }

    const CHILD_ENV: &str = "HUTCH_TEST_GC_CHILD";

    /// Runs [`mount_point_child`] as root of a user and mount namespace of
    /// its own (`unshare -rm`), where it may mount a tmpfs.
    #[test]
    fn prune_reports_what_it_cannot_remove_and_goes_on() {
        let out = std::process::Command::new("unshare")
            .arg("-rm")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "store::gc::tests::mount_point_child"])
            .args(["--ignored", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("running unshare (util-linux)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("gc went on"),
            "{}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run in namespaces of its own by prune_reports_what_it_cannot_remove_and_goes_on"]
    fn mount_point_child() {
        use rustix::mount::{MountFlags, UnmountFlags};
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tmp = store.tmp_dir();
        // Garbage a mount point makes unremovable (something mounted inside
        // a leftover, as a FUSE mount a killed process left would be), in
        // tmp/ and in an unreferenced layer; around it, removable garbage.
        let leftover = tmp.join("layer-4999999-1-0");
        let layer = store
            .root()
            .join(format!("layers/sha256/{}", "a".repeat(64)));
        let mut mounts = Vec::new();
        for top in [&leftover, &layer] {
            let mnt = top.join("root/deep/mnt");
            std::fs::create_dir_all(&mnt).unwrap();
            std::fs::write(top.join("root/deep/sibling"), "s").unwrap();
            std::fs::write(top.join("meta.json"), "{}").unwrap();
            rustix::mount::mount("none", &mnt, "tmpfs", MountFlags::empty(), None).unwrap();
            std::fs::write(mnt.join("inside"), "mounted").unwrap();
            mounts.push(mnt);
        }
        std::fs::write(tmp.join("blob-4999999-1-1"), "x").unwrap();
        std::fs::write(
            store
                .root()
                .join(format!("blobs/sha256/{}", "b".repeat(64))),
            "b",
        )
        .unwrap();
        // A container that `hutch rm` (pid 1 here: alive, not us) removes.
        let busy = tmp.join("container-1-1-0");
        std::fs::create_dir(&busy).unwrap();

        let report = store.gc(false).unwrap();
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        for (w, top) in report.warnings.iter().zip([&layer, &leftover]) {
            assert!(w.contains(&format!("removing {}", top.display())), "{w}");
            assert!(
                w.contains("/root/deep/mnt: another filesystem is mounted there"),
                "{w}"
            );
            assert!(w.contains("unmount it"), "{w}");
        }
        assert_eq!(
            (
                report.blobs_removed,
                report.layers_removed,
                report.tmp_removed
            ),
            (1, 0, 1)
        );
        for (top, mnt) in [&leftover, &layer].into_iter().zip(&mounts) {
            assert_eq!(
                std::fs::read_to_string(mnt.join("inside")).unwrap(),
                "mounted"
            );
            assert!(!top.join("root/deep/sibling").exists() && !top.join("meta.json").exists());
        }
        assert!(busy.exists(), "a live process's tmp entry is left alone");

        // Control: once unmounted, the same garbage goes.
        for mnt in &mounts {
            rustix::mount::unmount(mnt, UnmountFlags::empty()).unwrap();
        }
        let report = store.gc(false).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!((report.layers_removed, report.tmp_removed), (1, 1));
        assert!(!leftover.exists() && !layer.exists());
        println!("gc went on");
    }
}
