//! `hutch login` / `hutch logout`: credentials are checked against the
//! registry's `/v2/` (through its Basic or token flow) before they are kept.

use super::client::Client;
use super::credentials::{self, Credentials};
use anyhow::{Result, bail};
use std::path::PathBuf;

/// Check `creds` against `registry` and store them; returns the file.
pub fn login(registry: &str, creds: &Credentials, tls_verify: Option<bool>) -> Result<PathBuf> {
    if creds.username.is_empty() || creds.username.contains(':') {
        bail!("a username is needed, without ':'");
    }
    let tls_verify = super::config::tls_verify(registry, "", tls_verify)?;
    let client = Client::with_credentials(registry, tls_verify, Some(creds.clone()));
    let resp = client.request("GET", "/v2/", "", "")?;
    let status = resp.status().as_u16();
    if status != 200 {
        bail!("registry {registry} answered HTTP {status} to the login check");
    }
    credentials::save(registry, creds)
}

/// Forget the credentials for `registry`; false when there were none.
pub fn logout(registry: &str) -> Result<bool> {
    credentials::remove(registry)
}
