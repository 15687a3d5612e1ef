//! `containers/<id>/spec.json`: the final [`SandboxSpec`] of a container,
//! written when it is created (every container, foreground or `-d`) and
//! read back by its keeper whenever it starts: `run -d`, `start`,
//! `restart` and the keeper's own restarts run it again from this file,
//! on the same upper dir, with the options it was created with.

use crate::sandbox::spec::SandboxSpec;
use anyhow::{Context, Result};
use std::path::Path;

/// The file's name in the container's directory.
const SPEC_FILE: &str = "spec.json";

/// Write the spec of the container whose directory is `dir`.
pub(crate) fn save(dir: &Path, spec: &SandboxSpec) -> Result<()> {
    let json = serde_json::to_vec_pretty(spec).context("encoding the container's spec")?;
    crate::store::write_replace_nosync(&dir.join(SPEC_FILE), &json)
}

/// Read it back. A container made by a hutch older than this file has
/// none, and cannot be started again (`name` is for the message).
pub(crate) fn load(dir: &Path, name: &str) -> Result<SandboxSpec> {
    let path = dir.join(SPEC_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "container {name} has no spec.json (it was made by an older hutch) and cannot be \
             started again; `hutch run` makes a new one"
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes).with_context(|| format!("decoding {}", path.display()))
}
