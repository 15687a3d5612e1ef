//! Project environments (issue 17): a `hutch.toml` in a project's root
//! says what the project's environment is (an image or a build, a profile,
//! mounts, ports, setup commands) and which services run beside it; its
//! `hutch.lock` pins every image to a digest.
//!
//! * `manifest`: reading and checking `hutch.toml` into a resolved
//!   [`Manifest`](manifest::Manifest) (paths absolute against the project
//!   root), its hashes, and the commented template `hutch init` writes.
//! * `lock`: `hutch.lock`, every image pinned per platform, and whether a
//!   lock still fits what it was made from.
//! * `locking`: `hutch lock`: the project's image references (builds'
//!   base images too) resolved on their registries and written to the
//!   lock.
//!
//! This layer sits above `run/` and `build/` (which will start and build
//! what the manifest describes) and below `cli/`.

// The lock, `shell`, `up` and `verify` of issue 17 are the users of most of
// the manifest's and the lock's API; until they land only `hutch init`
// uses them.
pub(crate) mod env;
pub(crate) mod images;
pub(crate) mod lock;
pub(crate) mod locking;
#[allow(dead_code)]
pub mod manifest;
pub(crate) mod naming;
pub(crate) mod open;
pub(crate) mod services;
