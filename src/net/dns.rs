//! The DNS forwarder at 10.0.2.3:53.
//!
//! There is no DNS code in the data path: queries to 10.0.2.3:53 (UDP or TCP)
//! are NATed like any other flow, except that the host socket goes to the
//! first configured upstream instead of 10.0.2.3. Replies come back through
//! the same flow with 10.0.2.3:53 as their source. A host whose resolv.conf
//! names a local stub (127.0.0.53, systemd-resolved) works because the host
//! socket lives on the host, whatever `allow_host_loopback` says.

use std::net::{IpAddr, SocketAddr};

/// The resolvers named in the host's `/etc/resolv.conf`, port 53.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default()
}

/// `nameserver` lines of a resolv.conf, in order. IPv6 link-local addresses
/// with a zone (`fe80::1%eth0`) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?;
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\n\
                    search example.com\nnameserver ::1 # v6\n nameserver  9.9.9.9\n\
                    nameserver fe80::1%eth0\n;nameserver 1.1.1.1\nnameserver\n";
        let got = parse_resolv_conf(text);
        let want: Vec<SocketAddr> = ["127.0.0.53:53", "[::1]:53", "9.9.9.9:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}
