//! File trees as tar streams, for `hutch cp` and `hutch export`: the same
//! code runs on the host and, in a child process, inside a container
//! (sandbox/visit.rs), where every path is resolved in the container's
//! root.
//!
//! * `paths`: where a path is looked up ([`Base`]: the host, or inside a
//!   container's root) and how a `cp` path is split ([`ItemPath`]).
//! * `read`: a tree as a tar stream, never following a symlink below the
//!   item ([`write_item`], [`write_root`]).
//! * `write`: a hostile tar stream as files that never land outside the
//!   destination ([`extract`]).

mod paths;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub(crate) use paths::{Base, ItemPath};
pub(crate) use read::{write_item, write_root};
pub(crate) use write::{Extracted, Options, Owners, Target, extract};
