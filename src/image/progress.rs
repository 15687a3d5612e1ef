//! Progress of blob copies (pull, push): one bar per blob with size and
//! rate on a terminal (indicatif), one line per blob when it is done
//! otherwise, nothing with `--quiet`. Everything goes to stderr, so stdout
//! keeps what scripts read (the digest, "Pulled ...").

use crate::human::human_size as human;
use crate::oci::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live bars (stderr is a terminal).
    Bars,
    /// A line per blob when it is done.
    Lines,
    /// Nothing.
    Quiet,
}

pub struct Progress {
    mode: Mode,
    bars: Option<MultiProgress>,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let bars = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Progress { mode, bars }
    }

    /// Bars on a terminal, lines elsewhere, nothing when `quiet`.
    pub fn for_stderr(quiet: bool) -> Progress {
        Progress::new(if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        })
    }

    /// Nothing shown (load, import: local and quick).
    pub fn hidden() -> Progress {
        Progress::new(Mode::Quiet)
    }

    /// A blob about to be copied (`verb`: "pulled", "pushed"); `size` from
    /// its descriptor (0 when unknown).
    pub fn blob(&self, digest: &Digest, size: u64, verb: &'static str) -> BlobProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:28}] {decimal_bytes:>10}/{decimal_total_bytes:<10} {decimal_bytes_per_sec:>12} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(short(digest));
            bar
        });
        BlobProgress {
            mode: self.mode,
            bar,
            digest: short(digest),
            verb,
            bytes: Arc::new(AtomicU64::new(0)),
            resumed_at: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// A blob that needs no copy (`where_`: "already in the store").
    pub fn skipped(&self, digest: &Digest, why: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("blob {}: {why}", short(digest)),
            Mode::Bars => {
                if let Some(m) = &self.bars {
                    let _ = m.println(format!("{} {why}", short(digest)));
                }
            }
        }
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

pub struct BlobProgress {
    mode: Mode,
    bar: Option<ProgressBar>,
    digest: String,
    verb: &'static str,
    bytes: Arc<AtomicU64>,
    resumed_at: AtomicU64,
    start: Instant,
}

impl BlobProgress {
    /// Count what is read through `inner`, which starts at byte `offset`
    /// of the blob (a resumed download).
    pub fn wrap<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
        offset: u64,
    ) -> Box<dyn Read + Send + 'a> {
        self.resumed_at.store(offset, Ordering::Relaxed);
        self.bytes.store(offset, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(offset);
            if offset > 0 {
                bar.set_message(format!("resumed at {}", human(offset)));
            }
        }
        Box::new(Counting {
            inner,
            bar: self.bar.clone(),
            bytes: self.bytes.clone(),
        })
    }

    /// The copy ended (`ok`) or failed.
    pub fn finish(&self, ok: bool) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let resumed = self.resumed_at.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = (bytes - resumed.min(bytes)) as f64 / secs.max(1e-3);
        let resumed = if resumed > 0 {
            format!(", resumed at {}", human(resumed))
        } else {
            String::new()
        };
        let text = if ok && secs < 0.1 {
            // Too quick for a meaningful rate.
            format!("{} {}{resumed}", self.verb, human(bytes))
        } else if ok {
            format!(
                "{} {} in {secs:.1} s ({}/s{resumed})",
                self.verb,
                human(bytes),
                human(rate as u64)
            )
        } else {
            format!("failed after {}", human(bytes))
        };
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                if let Ok(style) = ProgressStyle::with_template("{prefix} {msg}") {
                    bar.set_style(style);
                }
                bar.finish_with_message(text)
            }
            (None, Mode::Lines) => eprintln!("blob {}: {text}", self.digest),
            _ => {}
        }
    }
}

struct Counting<'a> {
    inner: Box<dyn Read + Send + 'a>,
    bar: Option<ProgressBar>,
    bytes: Arc<AtomicU64>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_reader_counts_from_the_resume_offset() {
        let p = Progress::hidden();
        let d = Digest::of(b"x");
        let b = p.blob(&d, 10, "pulled");
        let mut r = b.wrap(Box::new(&b"abcdef"[..]), 4);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcdef");
        assert_eq!(b.bytes.load(Ordering::Relaxed), 10);
    }
}
