//! Subordinate id ranges: the `owner:start:count` lines of /etc/subuid
//! and /etc/subgid, as the host has them.

use std::fs;
use std::path::Path;

/// How many subordinate ids hutch wants for a full container mapping
/// (container 1..65536 -> the range).
pub(crate) const SUBID_COUNT: u64 = 65536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubIdRange {
    pub(crate) owner: String,
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// Parses a subordinate id file; `None` if it cannot be read. Malformed lines are skipped.
pub(crate) fn read_subids(path: &Path) -> Option<Vec<SubIdRange>> {
    let text = fs::read_to_string(path).ok()?;
    Some(parse_subids(&text))
}

fn parse_subids(text: &str) -> Vec<SubIdRange> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.trim().parse().ok()?;
            let count: u64 = f.next()?.trim().parse().ok()?;
            (count > 0).then_some(SubIdRange {
                owner,
                start,
                count,
            })
        })
        .collect()
}
