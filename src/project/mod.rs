//! Project environments (issue 17): a project's `hutch.toml` and its
//! `hutch.lock`.
//!
//! * `lock`: `hutch.lock`, every image pinned per platform, and whether a
//!   lock still fits what it was made from.

// `hutch lock` and the commands that read the lock are still to come.
#![allow(dead_code)]

pub(crate) mod lock;
