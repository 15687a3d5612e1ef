//! The FUSE overlay filesystem: image layers (read-only lowers) stacked
//! under a per-container upper dir, with the semantics of the kernel
//! overlayfs mounted with `userxattr` in a user namespace.
//!
//! * `format`: the on-disk format shared with the layer unpacker
//!   (whiteouts, opaque dirs, ownership records, foreign xattrs).
//! * `layers`: layer fds and the lookup rules over them.
//! * `relpath`: paths of any length below a layer root (past `PATH_MAX`).
//! * `fs`: nodes, inode numbers, every operation (`Result<_, Errno>`).
//! * `copyup`: copy-up into the upper layer.
//! * `idmap`: shifted owners (fuse-overlayfs's `uidmapping=`, `squash_to_root`...).
//! * `fuse`: the `fuser::Filesystem` glue and kernel options.
//! * `panic_guard`: handlers run under `catch_unwind`, panics logged once.
//! * `mount`: user namespace, `mount(2)`, the background session.
//! * `serve`: a mount in the caller's namespace served until unmounted
//!   (`hutch-overlayfs`), in a background process once it is ready.
//!
//! Library API for the launcher: [`enter_user_namespace`] (while still
//! single-threaded), then [`mount_overlay`] with an [`OverlayConfig`];
//! drop or [`MountedOverlay::unmount`] to end it.

mod copyup;
pub mod format;
mod fs;
mod fuse;
pub mod idmap;
mod layers;
mod mount;
mod panic_guard;
pub(crate) mod relpath;
mod serve;

pub(crate) use mount::thread_count;
pub use mount::{OverlayConfig, enter_user_namespace, mount_overlay};
pub use serve::{ServeMode, serve_until_unmounted};
