//! The OCI distribution client: pull from and push to registries (login
//! and credentials come next; see the issue notes).
//!
//! * `auth`: `WWW-Authenticate` challenges.
//! * `client`: HTTP to one registry (ureq, rustls with the system's
//!   roots), answering 401s with the token flow; `--tls-verify=false`
//!   allows self-signed certificates and plain HTTP.
//! * `source`: a repository as an image `Source`, so pulling shares the
//!   store's verified, parallel ingest with `hutch load`.
//! * `pull`: reference -> manifest (through indexes, by platform) -> store
//!   -> tag with history.
//! * `push`: blobs the registry lacks (HEAD, then POST + PUT), manifest last.

pub mod auth;
pub mod client;
pub mod pull;
pub mod push;
pub mod source;
