//! `hutch build`: turning a Containerfile into an image. So far only the
//! parser exists (`containerfile`); the executor that runs its steps is to
//! come (issue 16).

// The executor (issue 16) is not written yet; remove this when it uses the parser.
#![allow(dead_code)]

pub(crate) mod containerfile;
