//! `hutch build`: turning a Containerfile into an image. So far the parser
//! (`containerfile`) and the build context (`context`: the ignore file and
//! the files a COPY/ADD source names) exist; the executor that runs the
//! steps is to come (issue 16).

// The executor (issue 16) is not written yet; remove this when it uses these.
#![allow(dead_code)]

pub(crate) mod cache_key;
pub(crate) mod containerfile;
pub(crate) mod context;
pub(crate) mod copy_layer;
