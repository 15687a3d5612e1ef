//! The OCI distribution client: pull from and push to registries, with
//! credentials from `hutch login`.
//!
//! * `auth`: `WWW-Authenticate` challenges.
//! * `client`: HTTP to one registry (ureq, rustls with the system's
//!   roots), answering 401s with the token flow; `--tls-verify=false`
//!   allows self-signed certificates and plain HTTP.
//! * `config`: per-registry settings (`insecure`) in registries.toml.
//! * `credentials`: Podman's auth.json (and Docker's config.json).
//! * `error`: the registry's refusals (401, 403, 404, other statuses) as
//!   a type callers can downcast to.
//! * `login`: check credentials against a registry, then keep them.
//! * `source`: a repository as an image `Source`, so pulling shares the
//!   store's verified, parallel ingest with `hutch load`.
//! * `download`: a blob download that resumes with Range requests when
//!   the connection breaks.
//! * `pull`: reference -> manifest (through indexes, by platform) -> store
//!   -> tag with history.
//! * `push`: blobs the registry lacks (HEAD, then POST + PUT), manifest last.

pub mod auth;
pub mod client;
pub mod config;
pub mod credentials;
pub mod download;
pub mod error;
pub mod login;
pub mod pull;
pub mod push;
pub mod source;
