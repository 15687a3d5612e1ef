//! `hutch build`: a Containerfile's stages run as sandboxes, one layer per
//! instruction (issue 16; the executor is not written yet).
// The executor (issue 16) is not written yet; remove this when it uses these.
#![allow(dead_code)]

mod context;
