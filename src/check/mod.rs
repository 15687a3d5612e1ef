//! `hutch check`: host prerequisites for rootless sandboxes.

// TODO(issue 14): moves to sys when check is split (host.rs still has its own
// fork, unshare and getpwuid_r; crate::sys offers wrappers for them).
#[allow(unsafe_code)]
pub mod host;
