//! The COPY/ADD sources that are not plain context files: here-documents
//! (`COPY <<EOF /file`), URLs (`ADD https://...`, with `--checksum`), and
//! local tar archives that ADD unpacks.
//!
//! Here-documents and downloads are written as files into a small
//! directory of the store's tmp/ that then serves as the build context of
//! the step, so Docker's destination rules and the reproducible layer
//! writer (`copy_layer`) apply to them unchanged. Their mtimes are
//! SOURCE_DATE_EPOCH, or 0, so the layer does not depend on when they were
//! made. A download is refused when its sha256 is not the `--checksum`.
//!
//! An archive's entries go into the layer below the destination directory
//! with their own owners, modes and times (clamped to SOURCE_DATE_EPOCH),
//! or `--chown`/`--chmod`'s. Entries whose path would leave the
//! destination (`..`, or an absolute path's `..`), whiteout names, and
//! device nodes are refused; hard links must name an earlier entry of the
//! archive.

use super::copy_layer::Hashing;
use crate::oci::Digest;
use crate::oci::digest::Hasher;
use anyhow::{Context, Result, anyhow, bail};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Largest download an `ADD URL` takes.
const MAX_DOWNLOAD: u64 = 8 << 30;

/// Make `dir` hold `name` with `body`, mode 0644, mtime `mtime`.
pub(crate) fn write_file(dir: &Path, name: &str, body: &[u8], mode: u32, mtime: i64) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        bail!("{name:?} is not a file name");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    set_mode_and_time(&path, mode, mtime)
}

fn set_mode_and_time(path: &Path, mode: u32, mtime: i64) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("setting the time of {}", path.display()))
}

/// The file name a URL's download gets: the last segment of its path.
pub(crate) fn url_file_name(url: &str) -> Result<String> {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
        .unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        bail!("ADD {url}: the URL names no file; give a destination file name");
    }
    Ok(name.to_string())
}

/// `--checksum=sha256:HEX` as a digest.
pub(crate) fn parse_checksum(text: &str) -> Result<Digest> {
    Digest::parse(text)
        .map_err(|_| anyhow!("ADD --checksum={text}: expected sha256:<64 hex digits>"))
}

/// Download `url` into `dir/name` (mode 0600, as Docker; mtime `mtime`);
/// its sha256. Refused when it is not `checksum`.
pub(crate) fn fetch(
    url: &str,
    dir: &Path,
    name: &str,
    checksum: Option<&Digest>,
    mtime: i64,
) -> Result<Digest> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("ADD {url}: only http:// and https:// URLs are fetched");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("hutch/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .with_context(|| format!("ADD {url}: fetching it"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("ADD {url}: the server answered {status}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut body = response.into_body().into_reader().take(MAX_DOWNLOAD + 1);
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = body
            .read(&mut buf)
            .with_context(|| format!("ADD {url}: reading the download"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_DOWNLOAD {
            bail!("ADD {url}: the download is larger than {MAX_DOWNLOAD} bytes");
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(file);
    let got = hasher.finish();
    if let Some(want) = checksum
        && *want != got
    {
        bail!("ADD {url}: the download's checksum is {got}, not {want} as --checksum says");
    }
    set_mode_and_time(&path, 0o600, mtime)?;
    Ok(got)
}

/// How an archive is compressed, from its first bytes; None: not an
/// archive ADD unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Archive {
    Tar,
    Gzip,
    Zstd,
}

pub(crate) fn archive_kind(path: &Path) -> Result<Option<Archive>> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let got = f
            .read(&mut head[n..])
            .with_context(|| format!("reading {}", path.display()))?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Some(Archive::Gzip));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Some(Archive::Zstd));
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        bail!(
            "{}: bzip2 and xz archives are not unpacked by hutch's ADD; recompress it with \
             gzip or zstd, or COPY it and unpack it in a RUN",
            path.display()
        );
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(Some(Archive::Tar));
    }
    Ok(None)
}

/// A path inside the archive, cleaned: relative, without `.`, refusing
/// `..`.
fn clean(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => {
                if n.as_encoded_bytes().starts_with(b".wh.") {
                    bail!(
                        "{}: whiteout names are not taken from an archive",
                        path.display()
                    );
                }
                out.push(n);
            }
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                bail!(
                    "{}: a path with `..` may not leave the destination",
                    path.display()
                )
            }
            Component::Prefix(_) => bail!("{}: not a path", path.display()),
        }
    }
    Ok(out)
}

/// What an archive layer is stamped with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stamp {
    pub(crate) chown: Option<(u32, u32)>,
    pub(crate) chmod: Option<u32>,
    pub(crate) source_date_epoch: Option<i64>,
}

/// Write a layer tar holding the archives' entries below `dest` (an
/// absolute directory path) to `out`; its DiffID.
pub(crate) fn write_archive_layer<W: Write>(
    archives: &[(PathBuf, Archive)],
    dest: &str,
    stamp: &Stamp,
    out: W,
) -> Result<Digest> {
    let dest_rel = clean(Path::new(dest))?;
    let mut tar = tar::Builder::new(Hashing {
        inner: out,
        hasher: Hasher::default(),
    });
    // The destination and its parents.
    let mut parent = PathBuf::new();
    for c in dest_rel.components() {
        parent.push(c);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(stamp.source_date_epoch.unwrap_or(0).max(0) as u64);
        h.set_size(0);
        tar.append_data(&mut h, &parent, std::io::empty())?;
    }
    for (path, kind) in archives {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let reader: Box<dyn Read> = match kind {
            Archive::Tar => Box::new(file),
            Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Archive::Zstd => Box::new(
                zstd::stream::read::Decoder::new(file)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
        };
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .with_context(|| format!("reading the archive {}", path.display()))?;
        for entry in entries {
            let mut entry =
                entry.with_context(|| format!("reading the archive {}", path.display()))?;
            let what = || format!("the archive {}", path.display());
            let name = clean(&entry.path().with_context(what)?).with_context(what)?;
            if name.as_os_str().is_empty() {
                continue;
            }
            let full = dest_rel.join(&name);
            let mut h = entry.header().clone();
            let kind = h.entry_type();
            match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Directory
                | tar::EntryType::Symlink
                | tar::EntryType::Link
                | tar::EntryType::Fifo => {}
                tar::EntryType::Char | tar::EntryType::Block => {
                    bail!(
                        "{}: device node {} is not taken from an archive",
                        path.display(),
                        name.display()
                    )
                }
                _ => continue,
            }
            let mode = h.mode().with_context(what)? & 0o7777;
            let mtime = h.mtime().unwrap_or(0) as i64;
            let mut nh = tar::Header::new_gnu();
            nh.set_entry_type(kind);
            nh.set_mode(match (stamp.chmod, kind) {
                (_, tar::EntryType::Symlink) => 0o777,
                (Some(m), _) => m,
                (None, _) => mode,
            });
            let (uid, gid) = match stamp.chown {
                Some(o) => o,
                None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
            };
            nh.set_uid(uid.into());
            nh.set_gid(gid.into());
            nh.set_mtime(match stamp.source_date_epoch {
                Some(e) => mtime.min(e).max(0) as u64,
                None => mtime.max(0) as u64,
            });
            match kind {
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .context("a symlink without a target")?
                        .into_owned();
                    crate::image::layer_tar::append_symlink(&mut tar, &mut nh, &full, &target)?;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .with_context(what)?
                        .context("a hard link without a target")?;
                    let target = dest_rel.join(clean(&target).with_context(what)?);
                    nh.set_size(0);
                    tar.append_link(&mut nh, &full, target)?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    h.set_entry_type(tar::EntryType::Regular);
                    nh.set_entry_type(tar::EntryType::Regular);
                    let size = entry.size();
                    nh.set_size(size);
                    tar.append_data(&mut nh, &full, &mut entry)
                        .with_context(|| format!("{}: {}", path.display(), name.display()))?;
                }
                _ => {
                    nh.set_size(0);
                    tar.append_data(&mut nh, &full, std::io::empty())?;
                }
            }
        }
    }
    let w = tar.into_inner().context("finishing the layer tar")?;
    let Hashing { mut inner, hasher } = w;
    inner.flush().context("writing the layer tar")?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o640);
            h.set_uid(7);
            h.set_gid(8);
            h.set_mtime(2_000_000_000);
            h.set_size(data.len() as u64);
            // set_path refuses `..`; write the name bytes directly.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn entries(layer: &[u8]) -> Vec<(String, u64, u64, u64)> {
        tar::Archive::new(layer)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.uid().unwrap(),
                    h.mode().unwrap() as u64,
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn archives_unpack_below_the_destination() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar_of(&[("./x/one", b"1"), ("two", b"22")]))
            .unwrap();
        std::fs::write(&a, gz.finish().unwrap()).unwrap();
        assert_eq!(archive_kind(&a).unwrap(), Some(Archive::Gzip));
        let mut out = Vec::new();
        let stamp = Stamp {
            source_date_epoch: Some(1_700_000_000),
            ..Default::default()
        };
        let d1 = write_archive_layer(&[(a.clone(), Archive::Gzip)], "/opt/app", &stamp, &mut out)
            .unwrap();
        assert_eq!(Digest::of(&out), d1);
        assert_eq!(
            entries(&out),
            [
                ("opt".into(), 0, 0o755, 1_700_000_000),
                ("opt/app".into(), 0, 0o755, 1_700_000_000),
                ("opt/app/x/one".into(), 7, 0o640, 1_700_000_000),
                ("opt/app/two".into(), 7, 0o640, 1_700_000_000),
            ]
        );
        // Same input, same bytes.
        let mut again = Vec::new();
        let d2 =
            write_archive_layer(&[(a, Archive::Gzip)], "/opt/app", &stamp, &mut again).unwrap();
        assert_eq!(d1, d2);
    }

    #[test]
    fn hostile_archives_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for (i, bad) in ["../escape", "a/../../b", ".wh.passwd"].iter().enumerate() {
            let a = d.path().join(format!("bad{i}.tar"));
            std::fs::write(&a, tar_of(&[("ok", b"fine"), (bad, b"evil")])).unwrap();
            assert_eq!(archive_kind(&a).unwrap(), Some(Archive::Tar));
            let err =
                write_archive_layer(&[(a, Archive::Tar)], "/d", &Stamp::default(), Vec::new())
                    .unwrap_err();
            assert!(
                format!("{err:#}").contains(bad.trim_start_matches("a/"))
                    || format!("{err:#}").contains("..")
                    || format!("{err:#}").contains("whiteout"),
                "{bad}: {err:#}"
            );
        }
        // Control: a plain file is no archive.
        let p = d.path().join("plain");
        std::fs::write(&p, "just text").unwrap();
        assert_eq!(archive_kind(&p).unwrap(), None);
    }

    #[test]
    fn names_and_checksums() {
        assert_eq!(
            url_file_name("http://h:1/a/b.tar.gz?x=1").unwrap(),
            "b.tar.gz"
        );
        assert!(url_file_name("http://h/").is_err());
        assert!(parse_checksum("sha256:xyz").is_err());
        let d = Digest::of(b"x");
        assert_eq!(parse_checksum(d.as_str()).unwrap(), d);
    }
}
