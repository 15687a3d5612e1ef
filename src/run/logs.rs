//! A detached container's log: what its command writes on stdout and
//! stderr, kept apart, with the time each piece arrived.
//!
//! The file is Podman's `k8s-file` format, one record per line:
//!
//! ```text
//! 2026-12-06T03:20:01.123456789Z stdout F hello
//! 2026-12-06T03:20:01.200000000Z stderr P no newline yet
//! ```
//!
//! `F` ends a line (its newline is not written), `P` is a piece without
//! one. A record never holds a newline, so any bytes (binary data
//! included) come back exactly. When the file passes its cap it becomes
//! `ctr.log.1` (the one before is dropped) and a new one starts.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The log's name in the container's directory.
pub(crate) const LOG_FILE: &str = "ctr.log";

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One record read back: when, which stream, and the bytes (with the
/// newline for a full line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) time: String,
    pub(crate) stream: Stream,
    pub(crate) bytes: Vec<u8>,
}

struct Sink {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
}

impl Sink {
    fn write_record(&mut self, stream: Stream, piece: &[u8], full: bool) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(piece.len() + 48);
        line.extend_from_slice(now_nanos().as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_str().as_bytes());
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(piece);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.cap {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.file = File::options().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The writer of one container's log, shared by the stdout and stderr
/// copiers.
#[derive(Clone)]
pub(crate) struct LogWriter {
    sink: Arc<Mutex<Sink>>,
}

impl LogWriter {
    /// Open (append to) the log at `path`, rotating at `cap` bytes (the
    /// profile's `log_size_max`; None: never).
    pub(crate) fn open(path: &Path, cap: Option<u64>) -> Result<LogWriter> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the container log {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            sink: Arc::new(Mutex::new(Sink {
                path: path.to_owned(),
                file,
                size,
                cap: cap.map_or(u64::MAX, |c| c.max(4096)),
            })),
        })
    }

    /// Append `data` as records of `stream`: one per line, the rest as a
    /// partial record.
    pub(crate) fn write(&self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let Ok(mut sink) = self.sink.lock() else {
            return Err(std::io::Error::other("the log writer panicked"));
        };
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    sink.write_record(stream, &rest[..i], true)?;
                    rest = &rest[i + 1..];
                }
                None => {
                    sink.write_record(stream, rest, false)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// Copy everything read from `from` into the log as `stream`, in a
    /// thread that ends at end of file, also giving it to `also` (the
    /// attached clients). A pty's controller ends with EIO once the
    /// command's side is closed: that is its end of file.
    pub(crate) fn copy_from(
        &self,
        from: OwnedFd,
        stream: Stream,
        also: impl Fn(&[u8]) + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        let log = self.clone();
        std::thread::Builder::new()
            .name(format!("hutch-log-{}", stream.as_str()))
            .spawn(move || {
                let mut from = File::from(from);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Err(e) = log.write(stream, &buf[..n]) {
                                tracing::warn!("writing the container log: {e}");
                            }
                            also(&buf[..n]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                        Err(e) => {
                            tracing::warn!("reading the container's {}: {e}", stream.as_str());
                            break;
                        }
                    }
                }
            })
            .context("starting a log copier thread")
    }
}

/// `ctr.log` → `ctr.log.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

fn now_nanos() -> String {
    let t = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Parse one line of the log (without its newline); None for a line
/// that is not a record (a torn write at a crash).
pub(crate) fn parse_record(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let mut bytes = parts.next().unwrap_or_default().to_vec();
    if full {
        bytes.push(b'\n');
    }
    Some(Record {
        time,
        stream,
        bytes,
    })
}

/// The records of the rotated part of the log at `path` (`ctr.log.1`).
pub(crate) fn read_rotated(path: &Path) -> Result<Vec<Record>> {
    read_files(&[rotated(path)])
}

/// Every record of the log at `path` (its rotated part first).
#[cfg(test)]
pub(crate) fn read_all(path: &Path) -> Result<Vec<Record>> {
    read_files(&[rotated(path), path.to_owned()])
}

fn read_files(paths: &[PathBuf]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in paths {
        match File::open(p) {
            Ok(f) => read_records(&mut BufReader::new(f), &mut out)
                .map(drop)
                .with_context(|| format!("reading the container log {}", p.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("opening {}", p.display()));
            }
        }
    }
    Ok(out)
}

/// Append the complete records of `r` to `out`; returns the bytes
/// consumed (a last line without its newline is left for later).
fn read_records(r: &mut impl BufRead, out: &mut Vec<Record>) -> std::io::Result<u64> {
    let mut used = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(used);
        }
        used += n as u64;
        line.pop();
        if let Some(rec) = parse_record(&line) {
            out.push(rec);
        }
    }
}

/// Follows a log as it grows (`logs -f`), across rotations.
pub(crate) struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    offset: u64,
}

impl Follower {
    /// Start at the beginning of the log at `path` (its current file; the
    /// rotated one is [`read_rotated`]'s).
    pub(crate) fn from_start(path: &Path) -> Follower {
        let mut f = Follower::at_end(path);
        f.offset = 0;
        f
    }

    /// Start at the current end of the log at `path`.
    pub(crate) fn at_end(path: &Path) -> Follower {
        let (file, ino, offset) = match File::open(path) {
            Ok(f) => {
                let m = f.metadata().ok();
                let ino = m.as_ref().map(std::os::unix::fs::MetadataExt::ino);
                (Some(f), ino.unwrap_or(0), m.map(|m| m.len()).unwrap_or(0))
            }
            Err(_) => (None, 0, 0),
        };
        Follower {
            path: path.to_owned(),
            file,
            ino,
            offset,
        }
    }

    /// The complete records written since the last call.
    pub(crate) fn poll(&mut self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let current = std::fs::metadata(&self.path).ok();
        let ino = current
            .as_ref()
            .map(std::os::unix::fs::MetadataExt::ino)
            .unwrap_or(0);
        if self.file.is_some() && ino != self.ino {
            // Rotated: finish the old file, then start the new one.
            self.read_more(&mut out)?;
            self.file = None;
        }
        if self.file.is_none() {
            if let Ok(f) = File::open(&self.path) {
                self.file = Some(f);
                self.ino = ino;
                self.offset = 0;
            } else {
                return Ok(out);
            }
        }
        self.read_more(&mut out)?;
        Ok(out)
    }

    fn read_more(&mut self, out: &mut Vec<Record>) -> Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.seek(SeekFrom::Start(self.offset))
            .context("seeking in the container log")?;
        let used =
            read_records(&mut BufReader::new(&mut *f), out).context("reading the container log")?;
        self.offset += used;
        Ok(())
    }
}

/// `--since`: an RFC 3339 time, or a duration before now (`10m`, `1h30m`,
/// `45s`, as Docker takes it). Returns the RFC 3339 time (UTC).
pub(crate) fn parse_since(text: &str) -> Result<String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(format_utc(t));
    }
    let mut secs = 0f64;
    let mut num = String::new();
    let bad = || {
        anyhow::anyhow!(
            "--since {text:?}: give an RFC 3339 time (2026-12-06T10:00:00Z) or a duration (10m, 1h30m, 45s)"
        )
    };
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        secs += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() || text.is_empty() {
        return Err(bad());
    }
    let t = time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(secs);
    Ok(format_utc(t))
}

fn format_utc(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_any_bytes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ctr.log");
        let log = LogWriter::open(&path, Some(crate::profile::DEFAULT_LOG_SIZE_MAX)).unwrap();
        log.write(Stream::Stdout, b"one\ntwo\n").unwrap();
        log.write(Stream::Stderr, b"err without newline").unwrap();
        let binary: Vec<u8> = (0..=255u8).collect();
        log.write(Stream::Stdout, &binary).unwrap();
        let recs = read_all(&path).unwrap();
        let out: Vec<u8> = recs
            .iter()
            .filter(|r| r.stream == Stream::Stdout)
            .flat_map(|r| r.bytes.clone())
            .collect();
        let mut want = b"one\ntwo\n".to_vec();
        want.extend_from_slice(&binary);
        assert_eq!(out, want);
        let err: Vec<u8> = recs
            .iter()
            .filter(|r| r.stream == Stream::Stderr)
            .flat_map(|r| r.bytes.clone())
            .collect();
        assert_eq!(err, b"err without newline");
        assert!(recs[0].time.ends_with('Z') && recs[0].time.contains('T'));
    }

    #[test]
    fn rotation_keeps_one_older_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ctr.log");
        let log = LogWriter::open(&path, Some(4096)).unwrap();
        for i in 0..400 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        assert!(rotated(&path).exists());
        let recs = read_all(&path).unwrap();
        // The newest lines are all there, in order; the oldest are gone.
        let last = String::from_utf8(recs.last().unwrap().bytes.clone()).unwrap();
        assert_eq!(last, "line 399\n");
        assert!(recs.len() < 400);
        let nums: Vec<usize> = recs
            .iter()
            .map(|r| {
                String::from_utf8_lossy(&r.bytes)
                    .trim()
                    .trim_start_matches("line ")
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    }

    #[test]
    fn torn_and_foreign_lines_are_skipped() {
        assert!(parse_record(b"garbage").is_none());
        assert!(parse_record(b"2026-01-01T00:00:00Z stdin F x").is_none());
        assert!(parse_record(b"2026-01-01T00:00:00Z stdout X x").is_none());
        let r = parse_record(b"2026-01-01T00:00:00Z stdout F a b c").unwrap();
        assert_eq!(r.bytes, b"a b c\n");
        let r = parse_record(b"2026-01-01T00:00:00Z stderr P ").unwrap();
        assert_eq!(r.bytes, b"");
    }

    #[test]
    fn follower_sees_new_records_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ctr.log");
        let log = LogWriter::open(&path, Some(4096)).unwrap();
        log.write(Stream::Stdout, b"before\n").unwrap();
        let mut f = Follower::at_end(&path);
        assert!(f.poll().unwrap().is_empty());
        let mut seen = 0;
        for i in 0..300 {
            log.write(Stream::Stdout, format!("n{i}\n").as_bytes())
                .unwrap();
            if i % 7 == 0 {
                seen += f.poll().unwrap().len();
            }
        }
        seen += f.poll().unwrap().len();
        assert_eq!(seen, 300);
    }

    #[test]
    fn since_takes_times_and_durations() {
        assert_eq!(
            parse_since("2026-12-06T10:00:00+01:00").unwrap(),
            "2026-12-06T09:00:00.000000000Z"
        );
        let ten_min = parse_since("10m").unwrap();
        let now = format_utc(time::OffsetDateTime::now_utc());
        assert!(ten_min < now);
        assert!(parse_since("1h30m").unwrap() < ten_min);
        for bad in ["", "10", "5x", "yesterday"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
