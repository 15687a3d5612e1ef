//! `hutch run --dry-run`: the resolved spec as JSON, with what the host
//! would make of its cgroup limits.

use crate::sandbox::spec::SandboxSpec;
use crate::sandbox::{cgroup, rlimits};
use anyhow::Result;

/// The spec as `--dry-run` prints it: where the cgroup limits could not be
/// applied (as far as can be told without creating the cgroup), a
/// `cgroup_fallback` object says why and which rlimits stand in for them,
/// and the launcher's warning is printed.
pub(crate) fn with_cgroup_fallback(spec: &SandboxSpec) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(spec)?;
    let l = &spec.limits;
    let limits = cgroup::CgroupLimits {
        memory: l.memory,
        pids: l.pids,
        cpus: l.cpus,
    };
    if let Err(e) = cgroup::probe(&limits) {
        let fallback = rlimits::cgroup_fallback(l.memory, l.pids, l.cpus, l.nproc);
        eprintln!(
            "hutch: warning: memory/pids/cpu limits would not be applied: {e:#}{}",
            fallback.describe()
        );
        value["cgroup_fallback"] = serde_json::json!({
            "reason": format!("{e:#}"),
            "rlimits": fallback,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::PortForward;
    use crate::net::Proto;
    use crate::profile::NetworkMode;
    use crate::run::RunRequest;
    use crate::sandbox::caps::CapLevel;
    use crate::sandbox::seccomp::SeccompLevel;
    use crate::sandbox::spec::{CapabilitySet, MapHelpers};
    use crate::store::Store;

    /// A spec as `--dry-run` writes it, read back, is the same spec and
    /// gives the launcher the same inputs, typed fields included.
    #[test]
    fn a_dry_run_spec_read_back_launches_the_same_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("store")).unwrap();
        let req = RunRequest {
            image: "host".into(),
            command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            network: Some(NetworkMode::Slirp),
            publish: vec!["8080:80".into(), "127.0.0.1::53/udp".into()],
            env: vec!["X=1".into()],
            ..RunRequest::default()
        };
        let profile = crate::profile::load("default").unwrap();
        let dir = d.path().join("ctr");
        let mut spec =
            crate::run::plan::resolve(&store, &req, &profile, &"a".repeat(64), "ctr", &dir)
                .unwrap();
        // What a host with the helpers and a resolver would give.
        spec.id_maps.helper = Some(MapHelpers {
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        });
        spec.net.dns_upstreams = vec!["192.0.2.53:53".parse().unwrap()];
        spec.security.seccomp = SeccompLevel::Strict;
        spec.security.capabilities =
            CapabilitySet::of(&CapLevel::List(vec!["net_raw".into(), "CAP_CHOWN".into()])).unwrap();

        let json = serde_json::to_string_pretty(&with_cgroup_fallback(&spec).unwrap()).unwrap();
        let back: SandboxSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);

        // The typed fields, as the JSON has them and as they come back.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["security"]["seccomp"], "strict");
        assert_eq!(
            v["security"]["capabilities"],
            serde_json::json!(["CAP_CHOWN", "CAP_NET_RAW"])
        );
        assert_eq!(
            v["net"]["publish"][0],
            serde_json::json!({"host": "127.0.0.1:8080", "container_port": 80, "proto": "tcp"})
        );
        assert_eq!(
            v["net"]["dns_upstreams"],
            serde_json::json!(["192.0.2.53:53"])
        );
        assert_eq!(
            v["id_maps"]["helper"]["newuidmap"],
            serde_json::json!("/usr/bin/newuidmap")
        );
        assert_eq!(
            back.net.publish,
            [
                PortForward {
                    host: "127.0.0.1:8080".parse().unwrap(),
                    container_port: 80,
                    proto: Proto::Tcp,
                },
                PortForward {
                    host: "127.0.0.1:0".parse().unwrap(),
                    container_port: 53,
                    proto: Proto::Udp,
                },
            ]
        );

        // What the launcher derives from each: the same.
        let (a, b) = (
            crate::sandbox::network::config(&spec),
            crate::sandbox::network::config(&back),
        );
        assert_eq!(
            (
                a.mtu,
                a.allow_host_loopback,
                a.block_private,
                &a.dns_upstreams
            ),
            (
                b.mtu,
                b.allow_host_loopback,
                b.block_private,
                &b.dns_upstreams
            )
        );
        assert_eq!(b.dns_upstreams, ["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(back.process.search_path(), spec.process.search_path());
        assert!(back.process.search_path().contains(&"/usr/bin".to_string()));
        assert_eq!(
            back.security.capabilities.mask(),
            spec.security.capabilities.mask()
        );
        assert_eq!(back.rootfs.etc, dir.join("etc"));
        assert_eq!(back.id_maps.helper, spec.id_maps.helper);
    }
}
