//! The formats of OCI and Docker images, with no store behind them:
//! digests and hashing readers, image references, media types, platforms,
//! layer compression. Everything above (store, image operations, registry)
//! uses these; this module uses nothing of hutch but `error`.

pub mod compression;
pub mod digest;
pub mod media;
pub mod platform;
pub mod reference;

pub use digest::Digest;
pub use reference::TagRef;
