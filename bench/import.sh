#!/usr/bin/env bash
# bench/import.sh — load and unpack the Debian fixture image, side by side:
#   hutch load                      (store + unpack, one pass)
#   skopeo copy + umoci unpack --rootless
#   podman load (rootless, its own throwaway storage)
# Each tool starts from an empty store every run; the page cache is warm
# for the input archive. Prints medians and ratios.
#
# Usage: bench/import.sh [RUNS]   (as a normal user; as root it re-runs itself
# as the test user created by tests/run.sh)
set -euo pipefail
RUNS=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}
IMG=$FIX/debian-oci.tar

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in hyperfine skopeo umoci podman python3; do
  command -v "$t" >/dev/null || { echo "bench/import: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
[ -f "$IMG" ] || { echo "bench/import: $IMG is missing: run tests/run.sh once to build the fixtures"; exit 1; }
[ -x "$HUTCH" ] || { echo "bench/import: no hutch binary at $HUTCH: cargo build --release"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hbi.XXXXXX")   # short: podman limits --runroot length
cleanup() { podman unshare rm -rf "$work" 2>/dev/null || true; chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "image: $IMG ($(du -h "$IMG" | cut -f1)), $RUNS runs each, $(nproc) cores"

# Every run gets a fresh directory of its own (mktemp inside the command:
# negligible), so no cleanup is timed and warmup runs leave nothing behind.
hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/result.json" \
  -n hutch "d=\$(mktemp -d -p $work) && $HUTCH --root \$d load -q $IMG" \
  -n "skopeo+umoci" "d=\$(mktemp -d -p $work) && skopeo copy -q oci-archive:$IMG oci:\$d/layout:img && umoci unpack --rootless --image \$d/layout:img \$d/bundle >/dev/null" \
  -n "podman load" "d=\$(mktemp -d -p $work) && podman --root \$d/root --runroot \$d/run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file load -q -i $IMG" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }

python3 - "$work/result.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] for r in res}
h = med["hutch"]
others = {k: v for k, v in med.items() if k != "hutch"}
print(f"{'tool':<16}{'median s':>10}{'vs hutch':>10}")
for name, m in med.items():
    print(f"{name:<16}{m:>10.3f}{m / h:>9.2f}x")
best = min(others.values())
print(f"hutch is {best / h:.2f}x faster than the fastest alternative ({min(others, key=others.get)})")
PY
