//! One blob download that survives a broken connection: when the body
//! stops short (reset, timeout, the server closing early), the stream asks
//! again from the byte it got to (`Range: bytes=N-`) after a pause, so the
//! reader on top (decompression and unpacking, hashing) never notices. A
//! server that ignores the Range (200 instead of 206) is read from the
//! start with the first N bytes skipped.

use super::client::{RETRIES, backoff};
use super::error::RegistryError;
use crate::oci::Digest;
use std::io::{self, Read};
use ureq::Body;
use ureq::http::Response;

/// What a blob download needs from the repository it comes from (the
/// registry source implements it; the download does not know more of it).
pub trait BlobEndpoint: Sync {
    /// "registry R, repository P", for messages.
    fn endpoint(&self) -> String;
    /// GET the blob with extra `headers` (a Range); 200, 206 and 416 are
    /// answers, anything else an error saying what was refused.
    fn get_blob(&self, digest: &Digest, headers: &[(&str, &str)])
    -> anyhow::Result<Response<Body>>;
}

/// How many resumes in a row without progress make a download give up
/// (on top of the retries of each request).
pub const RESUMES: u32 = RETRIES + 2;

pub struct BlobStream<'a> {
    src: &'a dyn BlobEndpoint,
    digest: Digest,
    /// Bytes of the blob delivered so far (where a resume starts).
    pos: u64,
    /// The blob's size, once a response said it.
    size: Option<u64>,
    body: Option<Box<dyn Read + Send + 'a>>,
    /// Resumes in a row that brought no new byte.
    resumes: u32,
    /// Where the last interruption happened.
    broke_at: u64,
    /// Whether a request for it succeeded once (before that, a refusal is
    /// the answer, not an interruption).
    opened: bool,
    /// Why it gave up: later reads fail the same way without a request.
    failed: Option<String>,
}

impl<'a> BlobStream<'a> {
    /// The blob from byte `offset` on; nothing is requested before the
    /// first read.
    pub fn new(src: &'a dyn BlobEndpoint, digest: Digest, offset: u64) -> BlobStream<'a> {
        BlobStream {
            src,
            digest,
            pos: offset,
            size: None,
            body: None,
            resumes: 0,
            broke_at: offset,
            opened: false,
            failed: None,
        }
    }

    /// GET the blob from `self.pos` on.
    fn open(&mut self) -> anyhow::Result<Box<dyn Read + Send + 'a>> {
        let range = format!("bytes={}-", self.pos);
        let headers: &[(&str, &str)] = if self.pos > 0 {
            &[("Range", &range)]
        } else {
            &[]
        };
        let resp = self.src.get_blob(&self.digest, headers)?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        if resp.status().as_u16() == 416 {
            // Nothing after byte `pos`: a download killed after its last
            // byte. The digest check says whether that is really the end.
            if self.pos == 0 {
                anyhow::bail!(
                    "the registry refused to send blob {}: HTTP 416",
                    self.digest
                );
            }
            self.size = Some(self.pos);
            return Ok(Box::new(io::empty()));
        }
        let partial = resp.status().as_u16() == 206;
        let skip = if partial {
            // Content-Range: bytes START-END/TOTAL
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range).ok_or_else(|| {
                anyhow::anyhow!(
                    "the registry answered a Range request with Content-Range {range:?}"
                )
            })?;
            if start != self.pos {
                anyhow::bail!(
                    "asked for bytes from {} on, the registry sent them from {start}",
                    self.pos
                );
            }
            self.size = total.or(self.size);
            0
        } else {
            self.size = length.or(self.size);
            self.pos
        };
        let mut body: Box<dyn Read + Send + 'a> = Box::new(resp.into_body().into_reader());
        if skip > 0 {
            let skipped = io::copy(&mut body.by_ref().take(skip), &mut io::sink())?;
            if skipped < skip {
                anyhow::bail!("the blob ended after {skipped} bytes, before byte {skip}");
            }
        }
        Ok(body)
    }

    /// Give up, or pause before the next attempt. A connection that breaks
    /// again and again but brings more bytes each time (a flaky link, or a
    /// slow one hitting the body timeout) is followed to the end; only
    /// [`RESUMES`] attempts in a row without a new byte give up.
    fn interrupted(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        if self.pos > self.broke_at {
            self.resumes = 0;
        }
        self.broke_at = self.pos;
        if self.resumes >= RESUMES {
            let of = self.size.map(|s| format!(" of {s}")).unwrap_or_default();
            let msg = format!(
                "{}: the download of blob {} broke at byte {}{of} and {} resumes brought \
                 nothing more: {why}",
                self.src.endpoint(),
                self.digest,
                self.pos,
                RESUMES
            );
            self.failed = Some(msg.clone());
            return Err(io::Error::other(msg));
        }
        tracing::info!(
            "blob {}: interrupted at byte {} ({why}); resuming",
            self.digest,
            self.pos
        );
        std::thread::sleep(backoff(self.resumes));
        self.resumes += 1;
        Ok(())
    }
}

impl Read for BlobStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(why) = &self.failed {
            return Err(io::Error::other(why.clone()));
        }
        loop {
            if self.body.is_none() {
                match self.open() {
                    Ok(b) => {
                        self.body = Some(b);
                        self.opened = true;
                    }
                    // A refusal (404, 401) is final; the request itself
                    // already retried transient failures.
                    // A registry's refusal stays a `RegistryError` (inside
                    // the I/O error) for callers that look for one.
                    Err(e) if !self.opened => {
                        return Err(match e.downcast::<RegistryError>() {
                            Ok(refused) => io::Error::other(refused),
                            Err(e) => io::Error::other(format!("{e:#}")),
                        });
                    }
                    Err(e) => {
                        self.interrupted(format!("{e:#}"))?;
                        continue;
                    }
                }
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => match self.size {
                    Some(size) if self.pos < size => {
                        self.interrupted(format!("the connection closed at byte {}", self.pos))?
                    }
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.interrupted(e.to_string())?,
            }
        }
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) -> (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-2/3"), None);
    }
}
