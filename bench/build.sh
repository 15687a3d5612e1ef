#!/usr/bin/env bash
# bench/build.sh — `hutch build` side by side with rootless `podman build`
# (vfs storage, cgroupfs, runc: what works for any user, as in the tests),
# in one run, on the busybox fixture, with hyperfine. The Containerfile has
# six steps after FROM (WORKDIR, COPY of a 200-file tree, RUN, COPY of a
# script, RUN, CMD); both tools use their default RUN network and -q.
#   cold              --no-cache: every step runs again
#   unchanged         the same build again: every step from the cache
#   one file changed  one file of the copied tree rewritten before each run
#                     (hyperfine --prepare): the steps from that COPY on run
# Prints medians and podman/hutch ratios from the same run.
#
# Usage: bench/build.sh [RUNS]   (RUNS for the cached rows, default 20; the
# cold row runs RUNS/2 times, at least 3; as root it re-runs itself as the
# test user created by tests/run.sh)
set -euo pipefail
RUNS=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in hyperfine podman runc python3; do
  command -v "$t" >/dev/null || { echo "bench/build: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
for f in busybox-oci.tar busybox-docker.tar; do
  [ -f "$FIX/$f" ] || { echo "bench/build: $FIX/$f is missing: run tests/run.sh once to build the fixtures"; exit 1; }
done
COLD=$(( RUNS / 2 > 3 ? RUNS / 2 : 3 ))

work=$(mktemp -d "${TMPDIR:-/tmp}/hbb.XXXXXX")   # short: podman limits --runroot length
PODMAN=(podman --root "$work/pr" --runroot "$work/prr" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)
cleanup() {
  "${PODMAN[@]}" unshare rm -rf "$work/pr" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
export HUTCH_ROOT=$work/store
"$HUTCH" load -q "$FIX/busybox-oci.tar" >/dev/null
"${PODMAN[@]}" load -q -i "$FIX/busybox-docker.tar" >/dev/null

# The context: a small source tree and a script, the same for both tools.
ctx=$work/ctx
mkdir -p "$ctx/src"
for i in $(seq -w 1 200); do
  printf 'file %s\n%s\n' "$i" "$(seq $((10#$i)) $((10#$i + 40)) | tr '\n' ' ')" >"$ctx/src/f$i.txt"
done
cat >"$ctx/build.sh" <<'EOF'
#!/bin/sh
set -e
cat src/*.txt | md5sum > sum.txt
wc -l src/*.txt | tail -n1 > lines.txt
EOF
chmod +x "$ctx/build.sh"
cat >"$ctx/Containerfile" <<'EOF'
FROM docker.io/library/busybox:latest
WORKDIR /app
COPY src/ ./src/
RUN find src -type f | sort > manifest.txt
COPY build.sh ./
RUN ./build.sh
CMD ["cat", "/app/sum.txt"]
EOF

hb="$HUTCH build -q -t localhost/bench:latest $ctx"
pb="${PODMAN[*]} build -q -t localhost/bench:latest $ctx"
# Both must build it, and build the same tree.
sum_h=$($hb >/dev/null && "$HUTCH" run --rm --network none localhost/bench:latest)
sum_p=$($pb >/dev/null && "${PODMAN[@]}" run --rm --network none localhost/bench:latest)
[ "$sum_h" = "$sum_p" ] || { echo "bench/build: the two images differ: hutch $sum_h, podman $sum_p"; exit 1; }

echo "hutch build vs podman build, $RUNS runs ($COLD cold), $(nproc) cores, $(uname -r)"
echo "hutch $("$HUTCH" --version | cut -d' ' -f2), $(podman --version), $(runc --version | head -n1)"

# row NAME RUNS HUTCH-FLAGS [PREPARE]: hyperfine of both tools' builds with
# HUTCH-FLAGS added (for both), PREPARE run before each timed run.
row() {
  local name=$1 runs=$2 flags=$3 prep=${4:-}
  local args=(-N --style none --runs "$runs" --warmup 1 --export-json "$work/$name.json")
  [ -n "$prep" ] && args+=(--prepare "$prep")
  hyperfine "${args[@]}" \
    -n hutch "$HUTCH build -q $flags -t localhost/bench:latest $ctx" \
    -n podman "${PODMAN[*]} build -q $flags -t localhost/bench:latest $ctx" >"$work/$name.log" 2>&1 ||
    { echo "bench/build: hyperfine failed for $name:"; cat "$work/$name.log"; exit 1; }
}
row cold "$COLD" --no-cache
row unchanged "$RUNS" ""
row changed "$RUNS" "" "sh -c 'date +%s%N >$ctx/src/f100.txt'"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
print(f"{'row':<18}{'hutch ms':>10}{'podman ms':>11}{'podman/hutch':>14}")
for name, label in [("cold", "cold (no cache)"), ("unchanged", "unchanged"), ("changed", "one file changed")]:
    res = json.load(open(f"{work}/{name}.json"))["results"]
    med = {r["command"]: r["median"] for r in res}
    h, p = med["hutch"] * 1000, med["podman"] * 1000
    print(f"{label:<18}{h:>10.1f}{p:>11.1f}{p / h:>13.1f}x")
PY
