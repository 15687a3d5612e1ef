//! The FUSE overlay filesystem. For now: the on-disk format that unpacked
//! layers and upper dirs share (whiteouts, opaque dirs, recorded ownership).

pub mod format;
