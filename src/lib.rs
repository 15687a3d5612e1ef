//! hutch: a rootless, daemonless sandbox launcher.
//!
//! The folders of `src/` follow the data flow described in DESIGN.md:
//! `image` (references, manifests, archive formats) feeds `store` (the
//! content-addressed blob and layer store), which the overlay and the
//! launcher read. `cli` turns command lines into calls of this library.
//! Every `unsafe` block is in `sys`; the rest of the crate denies it.

#![deny(unsafe_code)]

pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod cli;
pub(crate) mod error;
pub(crate) mod host;
pub(crate) mod human;
pub(crate) mod image;
pub(crate) mod net;
pub(crate) mod oci;
pub(crate) mod overlay;
pub(crate) mod parallel;
pub(crate) mod profile;
pub(crate) mod project;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod store;
#[allow(unsafe_code)]
mod sys;

// The library's only public surface: the binary's entry point, and the
// capability names the integration tests (tests/hostile_caller.rs) check
// against. Everything else is crate-private, so unused code is reported.
pub use cli::main;
pub use profile::values::CAPABILITIES;
