//! Layer compression: gzip, zstd or none, recognised by magic bytes (media
//! types lie often enough that the bytes are the better witness).

use std::io::{self, BufRead, BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Look at the first bytes of a stream without consuming them.
    pub fn sniff<R: BufRead>(r: &mut R) -> io::Result<Compression> {
        let head = r.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A reader of the decompressed contents of `r`, whatever its compression.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(256 * 1024, r);
    let kind = Compression::sniff(&mut buffered)?;
    let reader: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((kind, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn round_trip(data: &[u8], compressed: Vec<u8>, expect: Compression) {
        let (kind, mut r) = decompress(&compressed[..]).unwrap();
        assert_eq!(kind, expect);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn recognises_each_compression() {
        let data = b"some tar bytes".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        round_trip(&data, gz.finish().unwrap(), Compression::Gzip);
        round_trip(
            &data,
            zstd::encode_all(&data[..], 3).unwrap(),
            Compression::Zstd,
        );
        round_trip(&data, data.clone(), Compression::None);
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let mut bad = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        bad.extend_from_slice(&[0xff; 64]);
        let (_, mut r) = decompress(&bad[..]).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
