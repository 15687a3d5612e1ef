//! `--network slirp` for a run: the spec's network settings turned into
//! the userspace stack's configuration (src/net), and starting it on the
//! TAP fd the container's init hands over (tap.rs).

use super::spec::SandboxSpec;
use anyhow::{Context, Result};
use std::os::fd::OwnedFd;

/// The stack's configuration for `spec`. `-p` specs are parsed here, so a
/// bad one fails before anything starts. `HUTCH_DNS_UPSTREAM=IP:PORT[,...]`
/// replaces the host's resolvers (for tests and odd hosts).
pub fn config(spec: &SandboxSpec) -> Result<crate::net::NetConfig> {
    let mut cfg = crate::net::NetConfig {
        mtu: spec.net.mtu as usize,
        allow_host_loopback: spec.net.allow_host_loopback,
        block_private: spec.net.block_private,
        ..Default::default()
    };
    for p in &spec.net.publish {
        cfg.forwards
            .push(crate::net::parse_publish(p).with_context(|| format!("-p {p}"))?);
    }
    if let Ok(list) = std::env::var("HUTCH_DNS_UPSTREAM") {
        cfg.dns_upstreams = list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .with_context(|| format!("HUTCH_DNS_UPSTREAM: {s:?} is not IP:PORT"))
            })
            .collect::<Result<_>>()?;
    }
    Ok(cfg)
}

/// Start the stack on `tap`.
pub fn start(tap: OwnedFd, cfg: crate::net::NetConfig) -> Result<crate::net::NetHandle> {
    crate::net::spawn(tap, cfg)
}
