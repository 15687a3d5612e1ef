//! Image operations that fill and read the store: loading and saving the
//! archive formats (OCI layout, OCI archive, docker-archive), importing
//! root filesystem tarballs, resolving a name to a stored image, progress
//! reports, and a container's changes (`upper` reads its upper dir,
//! `diff` compares it with the layers, `layer_tar` and `commit` make it a
//! new image, `instructions` applies `commit -c`). The formats themselves
//! (digests, references, media types, platforms, compression) are in
//! `oci`, below the store.

pub mod commit;
pub mod diff;
pub mod docker_archive;
pub mod ingest;
pub mod input;
pub mod instructions;
pub mod layer_tar;
pub mod load;
pub mod lower;
pub mod oci_layout;
pub mod progress;
pub mod resolve;
pub mod rootfs;
pub mod rootfs_digest;
pub mod save;
pub mod sniff;
pub mod source;
pub mod upper;

#[cfg(test)]
mod renamed_tests;
