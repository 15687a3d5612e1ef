//! The build context: which of its files a `COPY`/`ADD` may see.
//!
//! `ignore` reads `.containerignore` (else `.dockerignore`) and answers
//! whether a context-relative path is excluded, with Docker's rules
//! (moby/patternmatcher). `walk` lists the files a source names, minus the
//! excluded ones, through descriptors opened below the context root
//! without following symlinks, with the metadata the cache key hashes.

pub(crate) mod ignore;
pub(crate) mod walk;

#[cfg(test)]
mod tests;
