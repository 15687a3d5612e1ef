//! hutch: a rootless, daemonless sandbox launcher.
//!
//! The folders of `src/` follow the data flow described in DESIGN.md:
//! `image` (references, manifests, archive formats) feeds `store` (the
//! content-addressed blob and layer store), which the overlay and the
//! launcher read. `cli` turns command lines into calls of this library.
//! Every `unsafe` block is in `sys`; the rest of the crate denies it.

#![deny(unsafe_code)]

pub mod check;
pub mod cli;
pub mod error;
pub mod host;
pub mod human;
pub mod image;
pub mod net;
pub mod oci;
pub mod overlay;
pub mod parallel;
pub mod profile;
pub mod registry;
pub mod sandbox;
pub mod store;
#[allow(unsafe_code)]
mod sys;
