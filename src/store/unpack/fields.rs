//! Reading tar header fields: numbers, PAX times, zero blocks, the umask.

use super::*;

/// A numeric header field. Blank fields (all NUL or space) count as 0, as
/// in Go's archive/tar, which writes most layers; the tar crate refuses them.
pub(super) fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Read until `buf` is full or the end of `r`.
pub(super) fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(super) fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// A PAX time: `[-]seconds[.fraction]`.
pub(super) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    let mut digits = 0;
    for b in frac.bytes().take(9) {
        nanos = nanos * 10 + i64::from(b - b'0');
        digits += 1;
    }
    for _ in digits..9 {
        nanos *= 10;
    }
    let (tv_sec, nanos) = if neg {
        if nanos > 0 {
            (-secs - 1, 1_000_000_000 - nanos)
        } else {
            (-secs, 0)
        }
    } else {
        (secs, nanos)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: nanos as _,
    })
}

/// The process umask, from /proc/self/status (reading it with umask(2)
/// would change it, racing with other threads). If unknown, assume every
/// bit may be masked, so modes are always set explicitly.
pub(super) fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}
