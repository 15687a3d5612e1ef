//! `hutch check`: host prerequisites for rootless sandboxes.

pub mod host;
