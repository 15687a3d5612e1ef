//! `hutch build`: turning a Containerfile into an image.
//!
//! The Containerfile parser (`containerfile`), its stages (`stages`), the
//! build context (`context`), the cache key of a step (`cache_key`), the
//! image being built (`image_state`), the config instructions
//! (`metadata`), COPY/ADD (`copy_step`, with the layer writer
//! `copy_layer`; here-documents, URLs and archives in `add_source`), RUN in a sandbox (`run_step`), a stage's files for
//! `--from` (`stage_tree`), the progress lines (`progress`) and the
//! executor that ties them together (`executor`).

pub(crate) mod add_source;
pub(crate) mod cache_key;
pub(crate) mod containerfile;
pub(crate) mod context;
pub(crate) mod copy_layer;
pub(crate) mod copy_step;
pub(crate) mod executor;
pub(crate) mod image_state;
pub(crate) mod metadata;
pub(crate) mod progress;
pub(crate) mod run_step;
pub(crate) mod stage_tree;
pub(crate) mod stages;
