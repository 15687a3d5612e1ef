//! The container's /etc/hosts, /etc/hostname and /etc/resolv.conf,
//! written from the spec into its `rootfs.etc` directory before launch;
//! the container's root binds them over the image's.

use super::spec::SandboxSpec;
use crate::profile::NetworkMode;
use anyhow::{Context, Result};

/// hosts, hostname and resolv.conf for the container, in the spec's
/// `rootfs.etc` (with `--network host`, the host's resolv.conf as it is
/// now).
pub fn write(spec: &SandboxSpec) -> Result<()> {
    let etc_dir = &spec.rootfs.etc;
    std::fs::create_dir_all(etc_dir).with_context(|| format!("creating {}", etc_dir.display()))?;
    let h = &spec.hostname;
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{h}\n"
    );
    if spec.network == NetworkMode::Slirp {
        hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.2.100\t{h}\n"
        );
        if spec.net.allow_host_loopback {
            hosts.push_str("10.0.2.2\thost.hutch.internal\n");
        }
    }
    for e in &spec.net.add_hosts {
        hosts.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    let resolv = match spec.network {
        NetworkMode::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        NetworkMode::None => "# no network (hutch --network none)\n".to_string(),
        NetworkMode::Slirp => "nameserver 10.0.2.3\n".to_string(),
    };
    for (f, text) in [
        ("hosts", hosts),
        ("hostname", format!("{h}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = etc_dir.join(f);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
