//! `--network slirp` for a run: the spec's network settings turned into
//! the userspace stack's configuration (src/net), and starting it on the
//! TAP fd the container's init hands over (tap.rs).

use super::spec::SandboxSpec;
use anyhow::Result;
use std::os::fd::OwnedFd;

/// The stack's configuration for `spec` (its `-p` forwards are bound by
/// [`bind_published`]).
pub fn config(spec: &SandboxSpec) -> crate::net::NetConfig {
    crate::net::NetConfig {
        mtu: spec.net.mtu as usize,
        allow_host_loopback: spec.net.allow_host_loopback,
        block_private: spec.net.block_private,
        dns_upstreams: spec.net.dns_upstreams.clone(),
        ..Default::default()
    }
}

/// Bind the host side of the spec's `-p` forwards, before the container
/// is made: a port that cannot be had fails the run before anything
/// starts, and ports left for the kernel to choose (`-p 8080`) are known
/// in time to be reported and recorded.
pub fn bind_published(spec: &SandboxSpec) -> Result<crate::net::Listeners> {
    crate::net::Listeners::bind(&spec.net.publish)
}

/// Start the stack on `tap`, serving the forwards bound by [`bind_published`].
pub fn start(
    tap: OwnedFd,
    cfg: crate::net::NetConfig,
    listeners: crate::net::Listeners,
) -> Result<crate::net::NetHandle> {
    crate::net::spawn(tap, cfg, listeners)
}
