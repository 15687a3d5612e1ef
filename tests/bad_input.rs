//! Bad input through the CLI: every malformed or hostile image is refused
//! with exit status 125 and a message naming the problem, and the store is
//! left exactly as it was.

mod common;

use common::{TestStore, fixture};
use serde_json::json;
use sha2::Digest as _;
use std::path::{Path, PathBuf};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A one-file tar with an arbitrary (unchecked) member name.
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Knobs for a hand-made OCI layout.
struct Layout {
    layer_blob: Vec<u8>,
    diff_id: String,
    layer_media_type: String,
    config_override: Option<Vec<u8>>,
    blob_digest_override: Option<String>,
    skip_layer_blob: bool,
    /// A second layer after the first: (blob, DiffID claimed in the config).
    extra: Option<(Vec<u8>, String)>,
}

impl Layout {
    fn good() -> Layout {
        let tar = raw_tar("hello.txt", b"hello\n");
        Layout {
            diff_id: sha(&tar),
            layer_blob: gzip(&tar),
            layer_media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            config_override: None,
            blob_digest_override: None,
            skip_layer_blob: false,
            extra: None,
        }
    }

    fn diff_ids(&self) -> Vec<String> {
        let mut ids = vec![self.diff_id.clone()];
        ids.extend(self.extra.iter().map(|(_, d)| d.clone()));
        ids
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |data: &[u8]| -> String {
            let d = sha(data);
            std::fs::write(blobs.join(&d[7..]), data).unwrap();
            d
        };
        let config = self.config_override.clone().unwrap_or_else(|| {
            serde_json::to_vec(&json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": self.diff_ids()},
            }))
            .unwrap()
        });
        let config_digest = put(&config);
        let layer_digest = if self.skip_layer_blob {
            sha(&self.layer_blob)
        } else {
            put(&self.layer_blob)
        };
        let layer_digest = self.blob_digest_override.clone().unwrap_or(layer_digest);
        let mut layers = vec![
            json!({"mediaType": self.layer_media_type, "digest": layer_digest, "size": self.layer_blob.len()}),
        ];
        if let Some((blob, _)) = &self.extra {
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(blob), "size": blob.len()}));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let manifest_digest = put(&manifest);
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "localhost/bad:1"}}]}))
            .unwrap(),
        )
        .unwrap();
        dir.to_owned()
    }
}

/// The store listing without lock files (they persist by design).
fn listing(st: &TestStore) -> Vec<String> {
    st.listing()
        .into_iter()
        .filter(|l| !l.contains(" locks"))
        .collect()
}

/// Load `path` into a store that already holds busybox; expect failure with
/// `needle` in the message and an unchanged store.
fn expect_refused(path: &Path, needle: &str) {
    let st = TestStore::new();
    st.run_ok(["load", fixture("busybox-oci.tar").to_str().unwrap()]);
    let before = listing(&st);
    let (code, err) = st.run_fail(["load", path.to_str().unwrap()]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(err.starts_with("hutch: error: "), "{err}");
    assert_eq!(
        listing(&st),
        before,
        "a failed load must leave the store as it was"
    );
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hutch-bad-")
        .tempdir()
        .unwrap()
}

#[test]
fn the_hand_made_layout_is_valid() {
    // Guards the helpers above: without this, every refusal below could be
    // an artefact of a broken builder.
    let t = scratch();
    let st = TestStore::new();
    let out = st.run_ok(["load", Layout::good().write(t.path()).to_str().unwrap()]);
    assert!(out.contains("localhost/bad:1"), "{out}");
}

#[test]
fn layer_digest_mismatch() {
    let t = scratch();
    let mut l = Layout::good();
    l.blob_digest_override = Some(sha(b"something else"));
    std::fs::create_dir_all(t.path().join("blobs/sha256")).unwrap();
    // Put the real bytes under the wrong name.
    let dir = l.write(t.path());
    std::fs::write(
        dir.join("blobs/sha256").join(&sha(b"something else")[7..]),
        &l.layer_blob,
    )
    .unwrap();
    expect_refused(&dir, "digest mismatch");
}

#[test]
fn diff_id_mismatch() {
    let t = scratch();
    let mut l = Layout::good();
    l.diff_id = sha(b"not the tar");
    expect_refused(&l.write(t.path()), "DiffID mismatch");
}

#[test]
fn corrupt_gzip_stream() {
    let t = scratch();
    let mut l = Layout::good();
    let mut blob = l.layer_blob.clone();
    let mid = blob.len() / 2;
    blob[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    l.layer_blob = blob;
    expect_refused(&l.write(t.path()), "layer");
}

#[test]
fn corrupt_zstd_stream() {
    let t = scratch();
    let mut l = Layout::good();
    let mut blob = zstd::encode_all(&raw_tar("a", b"zzz")[..], 3).unwrap();
    let n = blob.len();
    blob.truncate(n - 6);
    l.layer_blob = blob;
    l.layer_media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
    expect_refused(&l.write(t.path()), "layer");
}

#[test]
fn missing_layer_blob() {
    let t = scratch();
    let mut l = Layout::good();
    l.skip_layer_blob = true;
    expect_refused(&l.write(t.path()), "missing");
}

#[test]
fn unknown_layer_media_type() {
    let t = scratch();
    let mut l = Layout::good();
    l.layer_media_type = "application/vnd.example.squashfs".into();
    expect_refused(
        &l.write(t.path()),
        "unknown media type application/vnd.example.squashfs",
    );
}

#[test]
fn invalid_config_json() {
    let t = scratch();
    let mut l = Layout::good();
    l.config_override = Some(b"{ not json".to_vec());
    expect_refused(&l.write(t.path()), "config");
}

#[test]
fn layer_count_differs_from_diff_ids() {
    let t = scratch();
    let mut l = Layout::good();
    l.config_override = Some(
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}))
            .unwrap(),
    );
    expect_refused(&l.write(t.path()), "DiffIDs");
}

#[test]
fn invalid_index_json() {
    let t = scratch();
    let dir = Layout::good().write(t.path());
    std::fs::write(dir.join("index.json"), b"[1,2").unwrap();
    expect_refused(&dir, "index.json is not valid JSON");
}

#[test]
fn path_traversal_in_a_layer_is_refused_and_writes_nothing_outside() {
    let t = scratch();
    let mut l = Layout::good();
    let tar = raw_tar("../../../../escaped-by-hutch-test", b"owned\n");
    l.diff_id = sha(&tar);
    l.layer_blob = gzip(&tar);
    expect_refused(&l.write(&t.path().join("img")), "escaped-by-hutch-test");
    assert!(!t.path().join("escaped-by-hutch-test").exists());
}

#[test]
fn truncated_archive() {
    let t = scratch();
    let data = std::fs::read(fixture("busybox-oci.tar")).unwrap();
    let cut = t.path().join("cut.tar");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    expect_refused(&cut, "truncated");
}

#[test]
fn not_an_image_at_all() {
    let t = scratch();
    let junk = t.path().join("junk.bin");
    std::fs::write(&junk, vec![0x42u8; 10_000]).unwrap();
    expect_refused(&junk, "junk.bin");
    expect_refused(&fixture("busybox-rootfs.tar"), "hutch import");
}

#[test]
fn corrupt_rootfs_tarball_import_leaves_no_image() {
    let st = TestStore::new();
    let t = scratch();
    let data = std::fs::read(fixture("busybox-rootfs.tar.gz")).unwrap();
    let cut = t.path().join("cut.tar.gz");
    std::fs::write(&cut, &data[..data.len() / 3]).unwrap();
    st.run_ok(["images"]);
    let before = listing(&st);
    let (code, err) = st.run_fail(["import", cut.to_str().unwrap(), "localhost/cut"]);
    assert_eq!(code, 125);
    assert!(err.contains("cut.tar.gz"), "{err}");
    assert_eq!(listing(&st), before);
    let (_, err) = st.run_fail(["inspect", "localhost/cut"]);
    assert!(err.contains("no image"), "{err}");
}

#[test]
fn a_bad_second_layer_undoes_the_good_first_one() {
    let t = scratch();
    let mut l = Layout::good();
    let tar2 = raw_tar("second.txt", b"two\n");
    l.extra = Some((gzip(&tar2), sha(b"wrong")));
    // The first layer unpacks fine; the second fails its DiffID check; the
    // first must not stay behind in the store.
    expect_refused(&l.write(t.path()), "DiffID mismatch");
}

/// Bytes of every value, control characters and invalid UTF-8 included
/// (a fixed xorshift sequence, so every run sees the same file).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // Not gzip or zstd magic, but escape sequences and bad UTF-8 early on.
    out[..8].copy_from_slice(b"\x1b[2J\x07\xff\xfe\x00");
    out
}

/// Whether `stderr` is safe on a terminal: UTF-8 without control bytes
/// other than newlines.
fn assert_printable(what: &str, stderr: &[u8]) {
    let text = std::str::from_utf8(stderr)
        .unwrap_or_else(|e| panic!("{what}: stderr is not UTF-8 ({e}): {stderr:?}"));
    assert!(
        stderr.iter().all(|&b| b >= 0x20 && b != 0x7f || b == b'\n'),
        "{what}: stderr has control bytes: {text:?}"
    );
}

#[test]
fn random_bytes_are_refused_with_a_printable_message_saying_what_the_file_is_not() {
    let st = TestStore::new();
    let t = scratch();
    let raw = noise(20_000);
    // A tar whose first member is valid (with an escape sequence in its
    // name), followed by noise: the tar reader's own message quotes bytes.
    let mut half = raw_tar("a\x1b[31mb\x07", b"0123456789");
    half.truncate(1024);
    half.extend_from_slice(&raw[..4096]);
    let cases: [(&str, Vec<u8>, &str, &str); 3] = [
        (
            "noise.bin",
            raw.clone(),
            "is not an image archive: it is neither a tar archive nor gzip or zstd compressed",
            "is not a root filesystem tarball: it is neither a tar archive nor gzip or zstd compressed",
        ),
        (
            "noise.gz",
            gzip(&raw),
            "is not an image archive: it is gzip compressed, but what it holds is not a tar archive",
            "is not a root filesystem tarball: it is gzip compressed, but what it holds is not a tar archive",
        ),
        (
            "half.tar",
            half,
            "corrupt or truncated",
            "malformed or truncated",
        ),
    ];
    st.run_ok(["images"]);
    let before = listing(&st);
    for (name, data, load_says, import_says) in cases {
        let path = t.path().join(name);
        std::fs::write(&path, &data).unwrap();
        for (args, says) in [
            (vec!["load", path.to_str().unwrap()], load_says),
            (vec!["import", path.to_str().unwrap(), "x"], import_says),
        ] {
            let (_, out) = st.run(&args);
            assert_eq!(out.status.code(), Some(125), "{args:?}");
            assert_printable(&format!("{args:?}"), &out.stderr);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{args:?}: expected {says:?} in {err}");
            assert!(err.lines().count() == 1, "{args:?}: one line: {err}");
            assert!(err.len() < 1200, "{args:?}: a bounded message: {err}");
        }
    }
    assert_eq!(listing(&st), before, "nothing of the failed commands stays");
}
