//! Where each selected context entry lands in the layer, by Docker's
//! `COPY` rules (no file is opened here).
//!
//! - The destination is relative to the stage's WORKDIR unless it starts
//!   with `/`; `.` and `..` are resolved lexically and cannot climb above
//!   the image root.
//! - A destination ending in `/` (or `.`) is a directory: sources go
//!   inside it. Otherwise a single file source is written at that path.
//! - A source directory copies its contents, not itself: its entries go
//!   below the destination, and the destination directory takes the source
//!   directory's mode and mtime.
//! - More than one source path (several sources, or a wildcard matching
//!   several) needs a destination ending in `/`, else the error Docker
//!   gives.
//! - Missing parents of what is written are added as directories (mode
//!   0755, owned by the `--chown` owner, as Docker creates them).
//! - Sockets are skipped (Docker's context tar cannot hold them); FIFOs
//!   are kept; device nodes are refused.
//! - When two sources write the same path, the later one wins, as the
//!   later copy overwrites the earlier.

use crate::build::context::walk::{Entry, Kind, Selection};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a layer path is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin<'a> {
    /// A context entry (file, directory, symlink or FIFO).
    Entry(&'a Entry),
    /// A missing parent directory of the destination.
    Parent,
}

/// The layer's paths (relative to the image root, `/`-separated, no
/// trailing slash), sorted by bytes so parents come before children.
pub(crate) type Plan<'a> = BTreeMap<Vec<u8>, Origin<'a>>;

/// The destination's components and whether it names a directory.
pub(crate) fn destination(dest: &str, workdir: &str) -> (Vec<Vec<u8>>, bool) {
    let full = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let is_dir = dest.is_empty()
        || dest.ends_with('/')
        || dest == "."
        || dest.ends_with("/.")
        || dest == ".."
        || dest.ends_with("/..");
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.as_bytes().to_vec()),
        }
    }
    let is_dir = is_dir || parts.is_empty();
    (parts, is_dir)
}

fn join(base: &[Vec<u8>], rest: &[u8]) -> Vec<u8> {
    let mut out = base.join(&b'/');
    if !rest.is_empty() {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(rest);
    }
    out
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// `path` below `dir` (`.` is the context root), or `None`.
fn below<'p>(path: &'p Path, dir: &Path) -> Option<&'p [u8]> {
    if dir == Path::new(".") {
        return if path == Path::new(".") {
            Some(b"")
        } else {
            Some(bytes(path))
        };
    }
    path.strip_prefix(dir).ok().map(bytes)
}

fn keep<'a>(plan: &mut Plan<'a>, path: Vec<u8>, e: &'a Entry) -> Result<(), String> {
    match e.kind {
        Kind::Socket => return Ok(()),
        Kind::CharDevice | Kind::BlockDevice => {
            return Err(format!(
                "COPY/ADD: {} in the build context is a device node, which hutch does \
                 not copy into an image; exclude it in the ignore file",
                e.path.display()
            ));
        }
        _ => {}
    }
    if !path.is_empty() {
        plan.insert(path, Origin::Entry(e));
    }
    Ok(())
}

/// The layer's paths for `sources` copied to `dest` in `workdir`.
pub(crate) fn plan<'a>(
    sources: &'a [Selection],
    dest: &str,
    workdir: &str,
) -> Result<Plan<'a>, String> {
    let (base, is_dir) = destination(dest, workdir);
    let count: usize = sources.iter().map(|s| s.matched.len()).sum();
    if count > 1 && !is_dir {
        return Err(format!(
            "COPY/ADD to `{dest}`: When using COPY with more than one source file, the \
             destination must be a directory and end with a /; add a trailing `/` to \
             the destination"
        ));
    }
    let mut plan = Plan::new();
    for sel in sources {
        for m in &sel.matched {
            let Some(top) = sel.entries.iter().find(|e| &e.path == m) else {
                return Err(format!(
                    "COPY/ADD: internal error, the source {} has no entry",
                    m.display()
                ));
            };
            if top.kind == Kind::Dir {
                for e in &sel.entries {
                    if let Some(rest) = below(&e.path, m) {
                        keep(&mut plan, join(&base, rest), e)?;
                    }
                }
            } else if is_dir {
                let name = m.file_name().map(|n| n.as_bytes()).unwrap_or_default();
                keep(&mut plan, join(&base, name), top)?;
            } else {
                keep(&mut plan, join(&base, b""), top)?;
            }
        }
    }
    let parents: Vec<Vec<u8>> = plan
        .keys()
        .flat_map(|p| {
            p.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .map(|(i, _)| p[..i].to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    for p in parents {
        plan.entry(p).or_insert(Origin::Parent);
    }
    Ok(plan)
}
