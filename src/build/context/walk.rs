//! Listing the context's files that a `COPY`/`ADD` source names.
