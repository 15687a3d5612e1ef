//! Images: digests, references, OCI manifests and configs, and the archive
//! formats images come in and go out as.

pub mod digest;

pub use digest::Digest;
pub mod compression;
pub mod media;
pub mod reference;
pub mod stored;

pub use reference::TagRef;
pub use stored::StoredImage;
pub mod docker_archive;
pub mod ingest;
pub mod input;
pub mod load;
pub mod oci_layout;
pub mod platform;
pub mod progress;
pub mod resolve;
pub mod rootfs;
pub mod save;
pub mod sniff;
pub mod source;
