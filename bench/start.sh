#!/usr/bin/env bash
# bench/start.sh — start-to-exit of `true` in the busybox image, side by side:
#   hutch run --rm --network none busybox true     (overlay, all namespaces)
#   hutch run --rm --network none host true        (the host's root as lower)
#   bwrap --unshare-all on the unpacked rootfs     (no overlay, bind mounts)
#   runc run of a rootless bundle of the same rootfs (crun 1.8, Debian 12's,
#     refuses hosts with cgroup v1/v2 hybrid layouts, so runc stands in)
#   podman run --rm --network none (rootless, vfs storage, --runtime runc)
# Prints medians (hyperfine) and ratios, then hutch's peak RSS during a run.
#
# Usage: bench/start.sh [RUNS]   (as a normal user; as root it re-runs
# itself as the test user created by tests/run.sh)
set -euo pipefail
RUNS=${1:-50}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in hyperfine bwrap runc crun podman python3; do
  command -v "$t" >/dev/null || { echo "bench/start: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
for f in busybox-oci.tar busybox-docker.tar busybox-rootfs.tar; do
  [ -f "$FIX/$f" ] || { echo "bench/start: $FIX/$f is missing: run tests/run.sh once to build the fixtures"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hbs.XXXXXX")   # short: podman limits --runroot length
cleanup() { podman --root "$work/pr" --runroot "$work/prr" --storage-driver vfs unshare rm -rf "$work/pr" 2>/dev/null || true
            chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export HUTCH_ROOT=$work/store
"$HUTCH" load -q "$FIX/busybox-oci.tar" >/dev/null

# bwrap and crun: the same rootfs, unpacked.
mkdir -p "$work/bundle/rootfs"
tar -xf "$FIX/busybox-rootfs.tar" -C "$work/bundle/rootfs" --no-same-owner --no-same-permissions 2>/dev/null || true
(cd "$work/bundle" && crun spec --rootless >/dev/null)
python3 - "$work/bundle/config.json" "$(id -u)" "$(id -g)" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = True
uid, gid = int(sys.argv[2]), int(sys.argv[3])
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
c["linux"].pop("resources", None)
# crun's rootless spec shares the host network unless told otherwise.
ns = c["linux"]["namespaces"]
if not any(n["type"] == "network" for n in ns):
    ns.append({"type": "network"})
json.dump(c, open(p, "w"))
PY

PODMAN=(podman --root "$work/pr" --runroot "$work/prr" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)
"${PODMAN[@]}" load -q -i "$FIX/busybox-docker.tar" >/dev/null
pimg=$("${PODMAN[@]}" images -q | head -n1)

echo "start-to-exit of true, $RUNS runs each, $(nproc) cores, $(uname -r)"
hyperfine -N --runs "$RUNS" --warmup 3 --export-json "$work/result.json" \
  -n "hutch (busybox)" "$HUTCH run --rm --network none busybox true" \
  -n "hutch (host)" "$HUTCH run --rm --network none host true" \
  -n "bwrap" "bwrap --unshare-all --die-with-parent --ro-bind $work/bundle/rootfs / --proc /proc --dev /dev /bin/true" \
  -n "runc" "runc --root $work/runcstate run -b $work/bundle bench" \
  -n "podman" "${PODMAN[*]} run --rm --network none $pimg true" >"$work/hyperfine.log" 2>&1 ||
  { cat "$work/hyperfine.log"; exit 1; }

python3 - "$work/result.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] for r in res}
h = med["hutch (busybox)"]
print(f"{'tool':<18}{'median ms':>10}{'vs hutch':>10}")
for name, m in med.items():
    print(f"{name:<18}{m * 1000:>10.1f}{m / h:>9.2f}x")
print(f"hutch/bwrap: {h / med['bwrap']:.2f}x   podman/hutch: {med['podman'] / h:.1f}x   runc/hutch: {med['runc'] / h:.2f}x")
PY

# Peak RSS: the hutch process (FUSE server + launcher) during a run that
# reads the whole busybox tree.
rss=$( { /usr/bin/time -f '%M' "$HUTCH" run --rm --network none busybox sh -c 'find / -xdev >/dev/null' ; } 2>&1 | tail -n1)
echo "hutch peak RSS during a run (find over the image): ${rss} KiB"
