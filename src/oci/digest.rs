//! Content digests (`sha256:<64 hex>`), the names of everything in the store.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A validated `sha256:<hex>` digest. Other algorithms are refused: every
/// producer hutch meets (registries, podman, skopeo, docker) uses sha256.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
pub struct BadDigest(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(bytes).as_slice())
    }

    fn from_hash(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    /// Parse `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest, BadDigest> {
        s.parse()
    }

    /// Parse a bare 64-character hex string as a sha256 digest.
    pub fn from_hex(hex_part: &str) -> Result<Digest, BadDigest> {
        format!("sha256:{hex_part}").parse()
    }

    /// The hex part, used as a file name in the store.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The first 12 hex digits, as image IDs are shown.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 71
            && s.starts_with("sha256:")
            && s[7..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Digest(s.to_owned()))
        } else {
            Err(BadDigest(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = BadDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A running sha256 with a byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn finish(self) -> Digest {
        Digest::from_hash(self.sha.finalize().as_slice())
    }
}

/// Hashing what is copied into it (`io::copy(&mut file, &mut hasher)`).
impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }
    /// Read the rest of the stream (so the digest covers all of it) and
    /// return the digest, the byte count and the inner reader.
    pub fn finish(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len, self.inner))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader that copies everything read through it into a writer and hashes
/// it: used to store a blob while it is being decompressed and unpacked, so
/// the data is read once.
pub struct TeeReader<R, W> {
    inner: R,
    copy: W,
    hasher: Hasher,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub fn new(inner: R, copy: W) -> Self {
        TeeReader {
            inner,
            copy,
            hasher: Hasher::default(),
        }
    }
    /// Drain the rest of the input into the copy; return digest, length and the writer.
    #[cfg(test)]
    pub fn finish(mut self) -> io::Result<(Digest, u64, W)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len, self.copy))
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_refuses_other_algorithms_and_bad_hex() {
        assert!(Digest::parse("sha512:abcd").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "G".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(d.short(), "aaaaaaaaaaaa");
    }

    #[test]
    fn tee_reader_copies_and_hashes_everything_even_unread_tail() {
        let data = vec![7u8; 100_000];
        let mut tee = TeeReader::new(&data[..], Vec::new());
        let mut first = [0u8; 10];
        tee.read_exact(&mut first).unwrap();
        let (digest, len, copy) = tee.finish().unwrap();
        assert_eq!(len, 100_000);
        assert_eq!(copy, data);
        assert_eq!(digest, Digest::of(&data));
    }
}
