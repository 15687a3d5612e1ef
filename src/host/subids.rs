//! /etc/subuid and /etc/subgid: the subordinate id ranges of users.

use std::fs;
use std::path::Path;

/// One `owner:start:count` line of /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIdRange {
    pub owner: String,
    pub start: u64,
    pub count: u64,
}

/// Parses a subordinate id file; `None` if it cannot be read. Malformed lines are skipped.
pub fn read_subids(path: &Path) -> Option<Vec<SubIdRange>> {
    let text = fs::read_to_string(path).ok()?;
    Some(parse_subids(&text))
}

pub fn parse_subids(text: &str) -> Vec<SubIdRange> {
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
