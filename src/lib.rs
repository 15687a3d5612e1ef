//! hutch: a rootless, daemonless sandbox launcher.
//!
//! The folders of `src/` follow the data flow described in DESIGN.md:
//! `image` (references, manifests, archive formats) feeds `store` (the
//! content-addressed blob and layer store), which the overlay and the
//! launcher read. `cli` turns command lines into calls of this library.
//! `sys` holds every syscall wrapper that needs `unsafe`; everything else
//! is denied `unsafe` code.

#![deny(unsafe_code)]

pub mod check;
pub mod cli;
pub mod error;
pub mod image;
pub mod net;
pub mod overlay;
pub mod parallel;
pub mod profile;
pub mod registry;
pub mod sandbox;
pub mod store;
#[allow(unsafe_code)]
mod sys;
