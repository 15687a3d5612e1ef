//! The network part of a run's request: `--network MODE[:OPT=VAL,...]`
//! as typed, the DNS resolvers the slirp network relays to, and the
//! published ports the kernel chose, to tell the user.

use crate::profile::NetworkMode;
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;

/// `--network MODE[:OPT=VAL,...]`: the mode, then slirp's options
/// (`allow_host_loopback=true|false`, `mtu=N`); or `container:NAME`, the
/// network of a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkArg {
    pub(crate) mode: NetworkMode,
    pub(crate) allow_host_loopback: Option<bool>,
    pub(crate) mtu: Option<u32>,
    /// `container:NAME` (the mode is then the one locks count it as).
    pub(crate) container: Option<String>,
}

impl NetworkArg {
    /// Parse `--network`'s value, as Podman's slirp4netns options are
    /// written.
    pub(crate) fn parse(s: &str) -> Result<NetworkArg> {
        let (mode, opts) = s.split_once(':').unwrap_or((s, ""));
        if mode == "container" {
            if opts.is_empty() {
                bail!("--network {s:?}: name the container (container:NAME)");
            }
            return Ok(NetworkArg {
                mode: NetworkMode::Slirp,
                allow_host_loopback: None,
                mtu: None,
                container: Some(opts.to_string()),
            });
        }
        let mode = match mode {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "slirp" | "slirp4netns" | "pasta" => NetworkMode::Slirp,
            _ => bail!("--network {s:?}: use slirp, none, host or container:NAME"),
        };
        let mut arg = NetworkArg {
            mode,
            allow_host_loopback: None,
            mtu: None,
            container: None,
        };
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            if mode != NetworkMode::Slirp {
                bail!("--network {s:?}: options are for slirp only");
            }
            let (k, v) = opt.split_once('=').unwrap_or((opt, "true"));
            match k {
                "allow_host_loopback" => {
                    arg.allow_host_loopback = Some(match v {
                        "true" => true,
                        "false" => false,
                        _ => bail!("--network {s:?}: allow_host_loopback is true or false"),
                    })
                }
                "mtu" => {
                    arg.mtu = Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--network {s:?}: mtu {v:?} is not a number")
                    })?)
                }
                _ => bail!(
                    "--network {s:?}: unknown option {k:?} (slirp knows allow_host_loopback and mtu)"
                ),
            }
        }
        Ok(arg)
    }
}

/// The resolvers 10.0.2.3 relays to: `HUTCH_DNS_UPSTREAM=IP:PORT[,...]`
/// when set (for tests and odd hosts), or the host's /etc/resolv.conf.
pub(crate) fn dns_upstreams() -> Result<Vec<SocketAddr>> {
    match std::env::var("HUTCH_DNS_UPSTREAM") {
        Ok(list) => parse_upstreams(&list),
        Err(_) => Ok(crate::net::host_resolvers()),
    }
}

fn parse_upstreams(list: &str) -> Result<Vec<SocketAddr>> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .with_context(|| format!("HUTCH_DNS_UPSTREAM: {s:?} is not IP:PORT"))
        })
        .collect()
}

/// The `-p` forwards whose host port the kernel chose (`-p 8080`), as
/// (`8080/tcp`, the host address bound): what a run tells the user.
pub(super) fn chosen_ports(
    spec: &crate::sandbox::spec::SandboxSpec,
    listeners: Option<&crate::net::Listeners>,
) -> Vec<(String, std::net::SocketAddr)> {
    let Some(l) = listeners else {
        return Vec::new();
    };
    spec.net
        .publish
        .iter()
        .zip(l.published())
        .filter(|(asked, _)| asked.host.port() == 0)
        .map(|(_, bound)| {
            (
                format!("{}/{}", bound.container_port, bound.proto.as_str()),
                bound.host,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_and_slirp_options() {
        let n = NetworkArg::parse("slirp").unwrap();
        assert_eq!(
            (n.mode, n.allow_host_loopback, n.mtu),
            (NetworkMode::Slirp, None, None)
        );
        let n = NetworkArg::parse("slirp4netns:allow_host_loopback=true,mtu=1500").unwrap();
        assert_eq!(
            (n.mode, n.allow_host_loopback, n.mtu),
            (NetworkMode::Slirp, Some(true), Some(1500))
        );
        let n = NetworkArg::parse("slirp:allow_host_loopback=false").unwrap();
        assert_eq!(n.allow_host_loopback, Some(false));
        assert_eq!(NetworkArg::parse("none").unwrap().mode, NetworkMode::None);
        for bad in [
            "bridge",
            "none:mtu=1500",
            "slirp:mtu=big",
            "slirp:allow_host_loopback=yes",
            "slirp:port_handler=rootlesskit",
        ] {
            let e = NetworkArg::parse(bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(bad)),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn dns_upstream_lists() {
        let got = parse_upstreams("127.0.0.1:5353,,[::1]:53").unwrap();
        assert_eq!(
            got,
            [
                "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let e = parse_upstreams("1.2.3.4").unwrap_err().to_string();
        assert!(
            e.contains("HUTCH_DNS_UPSTREAM") && e.contains("1.2.3.4"),
            "{e}"
        );
    }
}

/// `--add-host NAME:IP` (an IPv6 address after the first colon, with or
/// without brackets).
pub(crate) fn parse_add_host(s: &str) -> Result<crate::sandbox::spec::HostEntry> {
    let bad =
        |why: &str| anyhow::anyhow!("--add-host {s:?}: {why}; write NAME:IP (e.g. db:127.0.0.1)");
    let (name, ip) = s.split_once(':').ok_or_else(|| bad("no `:`"))?;
    let ok_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !name.starts_with(['-', '.']);
    if !ok_name {
        return Err(bad(
            "the name must be a host name (letters, digits, `-`, `.`, `_`)",
        ));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip
        .parse()
        .map_err(|_| bad("not an IP address after the `:`"))?;
    Ok(crate::sandbox::spec::HostEntry {
        name: name.to_string(),
        ip,
    })
}

#[cfg(test)]
mod add_host_tests {
    use super::parse_add_host;

    #[test]
    fn add_host_values() {
        let e = parse_add_host("db:127.0.0.1").unwrap();
        assert_eq!(
            (e.name.as_str(), e.ip.to_string().as_str()),
            ("db", "127.0.0.1")
        );
        let e = parse_add_host("v6.local:[::1]").unwrap();
        assert_eq!(e.ip.to_string(), "::1");
        assert_eq!(
            parse_add_host("x:fe80::2").unwrap().ip.to_string(),
            "fe80::2"
        );
        for bad in [
            "db",
            ":1.2.3.4",
            "d b:1.2.3.4",
            "db:host",
            "-x:1.2.3.4",
            "db:",
        ] {
            let e = parse_add_host(bad).unwrap_err().to_string();
            assert!(
                e.contains("--add-host") && e.contains("NAME:IP"),
                "{bad}: {e}"
            );
        }
    }
}
