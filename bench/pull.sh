#!/usr/bin/env bash
# bench/pull.sh — pull and unpack the Debian fixture image from a local
# registry (docker-registry on 127.0.0.1, plain HTTP), side by side:
#   cold (every run starts from an empty store):
#     hutch pull                      (fetch + store + unpack, one pass)
#     podman pull (rootless, its own throwaway storage, overlay driver)
#     skopeo copy docker://... oci:DIR + umoci unpack --rootless
#   warm re-pull (the image is already in the store; nothing to fetch):
#     hutch pull, podman pull         (one store each, pulled once beforehand)
# Prints medians and ratios, then hutch's peak RSS during one cold pull.
#
# Usage: bench/pull.sh [RUNS]   (as a normal user; as root it builds a release
# hutch and re-runs itself as the test user created by tests/run.sh).
# The warm rows run 4*RUNS times (each run takes milliseconds). The stores
# go under $TMPDIR (default /tmp): TMPDIR=/dev/shm takes the disk out.
set -euo pipefail
RUNS=${1:-5}
WARM_RUNS=$((RUNS * 4))
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}
IMG=$FIX/debian-oci.tar

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in hyperfine skopeo umoci podman docker-registry curl python3; do
  command -v "$t" >/dev/null || { echo "bench/pull: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
[ -f "$IMG" ] || { echo "bench/pull: $IMG is missing: run tests/run.sh once to build the fixtures"; exit 1; }
[ -x "$HUTCH" ] || { echo "bench/pull: no hutch binary at $HUTCH: cargo build --release"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hbp.XXXXXX")   # short: podman limits --runroot length
reg_pid=
cleanup() {
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  podman unshare rm -rf "$work" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The registry: docker-registry on a free loopback port, its data in $work.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
reg_pid=$!
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 200 ] && break
  kill -0 "$reg_pid" 2>/dev/null || { echo "bench/pull: docker-registry exited:"; cat "$work/registry/log"; exit 1; }
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 200 ] \
  || { echo "bench/pull: docker-registry did not answer on 127.0.0.1:$port"; cat "$work/registry/log"; exit 1; }
REF=127.0.0.1:$port/debian:bench
skopeo copy -q --dest-tls-verify=false "oci-archive:$IMG" "docker://$REF"
echo "image: $IMG ($(du -h "$IMG" | cut -f1)) served as $REF by docker-registry"
echo "stores under $work ($(df --output=fstype "$work" | tail -n1)), $RUNS cold runs, $WARM_RUNS warm runs each (+1 warmup), $(nproc) cores"

PODMAN="podman --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"

# Cold: every run gets a fresh directory of its own (mktemp inside the
# command: negligible), so no cleanup is timed and warmup runs leave nothing
# behind. `sync` before each run (untimed) so no run pays for the writeback
# of an earlier one (or of filling the registry).
hyperfine --runs "$RUNS" --warmup 1 --prepare sync --export-json "$work/cold.json" \
  -n hutch "d=\$(mktemp -d -p $work) && $HUTCH --root \$d pull --tls-verify=false -q $REF" \
  -n "podman pull" "d=\$(mktemp -d -p $work) && $PODMAN --root \$d/root --runroot \$d/run pull -q --tls-verify=false $REF" \
  -n "skopeo+umoci" "d=\$(mktemp -d -p $work) && skopeo copy -q --src-tls-verify=false docker://$REF oci:\$d/layout:img && umoci unpack --rootless --image \$d/layout:img \$d/bundle >/dev/null" \
  >"$work/cold.log" 2>&1 || { cat "$work/cold.log"; exit 1; }

# Warm: one store per tool, filled once; every run pulls the same image again.
hw=$work/warm-hutch pw=$work/warm-podman
mkdir "$hw" "$pw"
"$HUTCH" --root "$hw" pull --tls-verify=false -q "$REF" >/dev/null
$PODMAN --root "$pw/root" --runroot "$pw/run" pull -q --tls-verify=false "$REF" >/dev/null
hyperfine --runs "$WARM_RUNS" --warmup 1 --export-json "$work/warm.json" \
  -n hutch "$HUTCH --root $hw pull --tls-verify=false -q $REF" \
  -n "podman pull" "$PODMAN --root $pw/root --runroot $pw/run pull -q --tls-verify=false $REF" \
  >"$work/warm.log" 2>&1 || { cat "$work/warm.log"; exit 1; }

python3 - "$work/cold.json" "$work/warm.json" <<'PY'
import json, sys
def results(path):
    return {r["command"]: r for r in json.load(open(path))["results"]}
def table(title, res):
    h = res["hutch"]["median"]
    print(f"{title:<20}{'median s':>10}{'vs hutch':>10}{'min s':>9}{'max s':>9}")
    for name, r in res.items():
        m = r["median"]
        print(f"  {name:<18}{m:>10.3f}{m / h:>9.2f}x{r['min']:>9.3f}{r['max']:>9.3f}")
cold_r, warm_r = results(sys.argv[1]), results(sys.argv[2])
table("cold pull+unpack", cold_r)
table("warm re-pull", warm_r)
cold = {k: r["median"] for k, r in cold_r.items()}
warm = {k: r["median"] for k, r in warm_r.items()}
others = {k: v for k, v in cold.items() if k != "hutch"}
best = min(others, key=others.get)
print(f"hutch cold is {others[best] / cold['hutch']:.2f}x faster than the fastest alternative ({best})")
print(f"hutch warm re-pull: {warm['hutch'] * 1000:.0f} ms (podman: {warm['podman pull'] * 1000:.0f} ms)")
PY

# Peak RSS of hutch during one cold pull into a fresh store.
d=$(mktemp -d -p "$work")
if [ -x /usr/bin/time ] && /usr/bin/time -f %M true >/dev/null 2>&1; then
  rss=$( { /usr/bin/time -f %M "$HUTCH" --root "$d" pull --tls-verify=false -q "$REF" >/dev/null; } 2>&1 | tail -n1)
  how="GNU time's maximum resident set"
else
  # No GNU time: sample VmHWM (the kernel's own peak) from /proc until exit.
  "$HUTCH" --root "$d" pull --tls-verify=false -q "$REF" >/dev/null &
  p=$! rss=0
  while v=$(awk '/^VmHWM:/ {print $2}' /proc/$p/status 2>/dev/null) && [ -n "$v" ]; do
    rss=$v; sleep 0.01
  done
  wait "$p"
  how="VmHWM sampled from /proc every 10 ms (may miss the end)"
fi
echo "hutch peak RSS during one cold pull: ${rss} KiB ($how)"
