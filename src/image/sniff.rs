//! What an input file is, from its first bytes: a tar archive (plain or
//! compressed) or something else, so that a message can say what a file
//! handed to `load` or `import` is not, without printing its bytes.

use crate::oci::compression::Compression;
use std::io::{self, Read};

/// Size of a tar header block.
pub const BLOCK: usize = 512;

/// Up to `n` bytes from the start of `r` (fewer only at its end).
pub fn read_head(r: impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut out)?;
    Ok(out)
}

/// Whether `head` (the first bytes of a stream, up to [`BLOCK`]) can start
/// a tar archive: empty (an empty archive), a zero block (its end
/// marker), or a header whose checksum is right.
pub fn is_tar_start(head: &[u8]) -> bool {
    if head.is_empty() {
        return true;
    }
    if head.len() < BLOCK {
        return false;
    }
    let block = &head[..BLOCK];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    // The checksum field (bytes 148..156): octal digits ended by NUL or
    // space; the sum is taken with the field itself read as spaces.
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return false;
    }
    let Ok(want) = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or(""), 8) else {
        return false;
    };
    let in_field = |i: usize| (148..156).contains(&i);
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { u32::from(b) })
        .sum();
    // Some old tars summed signed bytes.
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { i64::from(b as i8) })
        .sum();
    want == unsigned || i64::from(want) == signed
}

/// What a file whose (decompressed) start is not a tar header is not,
/// for messages: "it is neither a tar archive nor gzip or zstd compressed".
pub fn not_tar(kind: Compression) -> String {
    match kind {
        Compression::None => {
            "it is neither a tar archive nor gzip or zstd compressed data".to_owned()
        }
        kind => format!(
            "it is {} compressed, but what it holds is not a tar archive",
            kind.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_told_from_other_bytes() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "f", &b"abc"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        assert!(is_tar_start(&bytes[..BLOCK]));
        assert!(is_tar_start(&[]));
        assert!(is_tar_start(&[0u8; BLOCK]));
        let mut bad = bytes[..BLOCK].to_vec();
        bad[0] ^= 1;
        assert!(!is_tar_start(&bad), "a changed byte breaks the checksum");
        assert!(!is_tar_start(&bytes[..100]), "shorter than a header");
        let noise: Vec<u8> = (0..BLOCK).map(|i| (i * 131 % 251) as u8).collect();
        assert!(!is_tar_start(&noise));
        assert_eq!(
            not_tar(Compression::Gzip),
            "it is gzip compressed, but what it holds is not a tar archive"
        );
    }
}
