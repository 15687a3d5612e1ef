#!/usr/bin/env bash
# bench/env.sh — a command in a running project environment, side by side,
# in one run, with hyperfine:
#   hutch      `hutch shell --dir P -- true`: P's hutch.toml names the image
#              (`[env] image`, pinned by `hutch lock`) and P's environment
#              already runs
#   podman     `podman exec C true` into a running rootless Podman container
#              C of the same image (vfs storage, cgroupfs, runc: as
#              bench/build.sh and the tests)
#   distrobox  `distrobox enter D -- true` (Debian's distrobox package,
#              1.4.2.1 here) into a created and initialised distrobox D on
#              the same Podman set-up (through `env PATH=...` and a `podman`
#              wrapper that adds the same flags: two more execs, about 1 ms);
#              Debian row only: distrobox-init installs sudo, passwd etc.
#              with the image's package manager, which busybox has not, and
#              it needs the network for that (apt-get inside the container,
#              about 30 s, untimed). Without distrobox, or when its set-up
#              fails, the row says n/a and why.
# Two images: the busybox fixture and the Debian fixture. The environment
# is kept running by `hutch up -d`, which keeps it up until `hutch down`
# even with no services (else every timed shell would start and stop it).
# An older hutch, whose last shell out stopped it anyway, gets a background
# `hutch shell -- sleep` instead: the script checks and says which it used.
# Prints medians, the ratio of the fastest alternative to hutch, and the
# issue's target (under 50 ms, at least 10x faster than the fastest
# alternative) as a line; nothing fails on it.
#
# Usage: bench/env.sh [RUNS]   (default 30; as root it re-runs itself as the
# test user created by tests/run.sh)
set -euo pipefail
RUNS=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in hyperfine podman runc python3; do
  command -v "$t" >/dev/null || { echo "bench/env: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
for f in busybox-oci.tar busybox-docker.tar debian-oci.tar debian-docker.tar; do
  [ -f "$FIX/$f" ] || { echo "bench/env: $FIX/$f is missing: run tests/run.sh once to build the fixtures"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hbe.XXXXXX")   # short: podman limits --runroot length
PODMAN=(podman --root "$work/pr" --runroot "$work/prr" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)
# The same Podman for distrobox, which runs `podman` from PATH (rootless
# Podman 4.3 ignores CONTAINERS_STORAGE_CONF's graphroot and runroot).
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v podman) ${PODMAN[*]:1}" >"$work/bin/podman"
chmod +x "$work/bin/podman"
export HUTCH_ROOT=$work/store
holders=()
cleanup() {
  for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${holders[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in bb deb; do [ -f "$work/$d/hutch.toml" ] && "$HUTCH" down --dir "$work/$d" >/dev/null 2>&1 || true; done
  "${PODMAN[@]}" rm -f -a -t 0 >/dev/null 2>&1 || true
  "${PODMAN[@]}" unshare rm -rf "$work/pr" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$HUTCH" load -q "$FIX/busybox-oci.tar" >/dev/null
"$HUTCH" load -q "$FIX/debian-oci.tar" >/dev/null
"$HUTCH" tag docker.io/library/busybox:latest localhost/bench/busybox:1
"$HUTCH" tag docker.io/library/debian:bookworm localhost/bench/debian:1
pbb=$("${PODMAN[@]}" load -q -i "$FIX/busybox-docker.tar" | sed -n 's/^Loaded image[^:]*: //p' | tail -n1)
pdeb=$("${PODMAN[@]}" load -q -i "$FIX/debian-docker.tar" | sed -n 's/^Loaded image[^:]*: //p' | tail -n1)

# project DIR IMAGE: a project whose environment is IMAGE, locked.
project() {
  mkdir -p "$work/$1"
  printf '[env]\nimage = "%s"\n' "$2" >"$work/$1/hutch.toml"
  "$HUTCH" lock --dir "$work/$1" >/dev/null 2>"$work/$1.lock.log" ||
    { echo "bench/env: hutch lock failed for $2:"; cat "$work/$1.lock.log"; exit 1; }
}
# env_up DIR: whether DIR's environment runs.
env_up() {
  (cd "$work/$1" && "$HUTCH" ps --project) | awk '$1 == "env"' | grep -q ' Up '
}
project bb localhost/bench/busybox:1
project deb localhost/bench/debian:1

# Does `hutch up -d` (no services) keep the environment up across a shell?
"$HUTCH" up -d --dir "$work/bb"
"$HUTCH" shell --dir "$work/bb" -- true
if env_up bb; then up_keeps=yes; else up_keeps=no; fi
for d in bb deb; do
  if [ "$up_keeps" = yes ]; then
    "$HUTCH" up -d --dir "$work/$d"
  else
    "$HUTCH" shell --dir "$work/$d" -- sleep 100000 </dev/null >/dev/null 2>&1 &
    holders+=($!)
  fi
done
for d in bb deb; do
  for _ in $(seq 100); do env_up "$d" && break; sleep 0.1; done
  env_up "$d" || { echo "bench/env: the $d environment does not run"; exit 1; }
  # Each environment runs a command before anything is timed.
  "$HUTCH" shell --dir "$work/$d" -- true || { echo "bench/env: hutch shell -- true failed in $d"; exit 1; }
done

"${PODMAN[@]}" run -d --name pbb "$pbb" sleep 100000 >/dev/null
"${PODMAN[@]}" run -d --name pdeb "$pdeb" sleep 100000 >/dev/null
"${PODMAN[@]}" exec pbb true && "${PODMAN[@]}" exec pdeb true

# distrobox on the Debian image: created, then its first enter (untimed)
# runs distrobox-init, which installs its packages with apt-get.
dbx=""
if ! command -v distrobox >/dev/null; then
  dbx_why="distrobox is not installed (tests/host-setup.sh installs it)"
elif ! PATH=$work/bin:$PATH distrobox create --yes --name hbe-deb --image "$pdeb" >"$work/dbx.log" 2>&1 ||
     ! PATH=$work/bin:$PATH timeout 600 distrobox enter hbe-deb -- true </dev/null >>"$work/dbx.log" 2>&1; then
  dbx_why="distrobox create/enter failed (its first enter needs the network): $(tail -n1 "$work/dbx.log")"
else
  dbx="env PATH=$work/bin:$PATH distrobox enter hbe-deb -- true"
  dbx_why=""
fi

# Let the writeback of the set-up (vfs copies, distrobox's apt-get) pass.
sync; sleep 5

echo "entering a running environment, $RUNS runs, $(nproc) cores, $(uname -r)"
echo "hutch $("$HUTCH" --version | cut -d' ' -f2), $(podman --version), $(runc --version | head -n1)${dbx:+, distrobox $(distrobox version 2>/dev/null | sed 's/.*: //')}"
if [ "$up_keeps" = yes ]; then
  echo "the environments run from \`hutch up -d\` (it stays up across shells with no services)"
else
  echo "the environments run from a background \`hutch shell -- sleep 100000\` (\`hutch up -d\` with no services: the first shell to leave stops it)"
fi

# row NAME DIR CTR [DISTROBOX]: hyperfine of the tools side by side.
row() {
  local name=$1 dir=$2 ctr=$3 dbx=${4:-}
  local args=(-N --style none --runs "$RUNS" --warmup 3 --export-json "$work/$name.json"
              -n hutch "$HUTCH shell --dir $work/$dir -- true"
              -n podman "${PODMAN[*]} exec $ctr true")
  [ -n "$dbx" ] && args+=(-n distrobox "$dbx")
  hyperfine "${args[@]}" >"$work/$name.log" 2>&1 ||
    { echo "bench/env: hyperfine failed for $name:"; cat "$work/$name.log"; exit 1; }
}
row busybox bb pbb
row debian deb pdeb "$dbx"

python3 - "$work" "$dbx_why" <<'PY'
import json, sys
work, dbx_why = sys.argv[1], sys.argv[2]
print(f"{'image':<9}{'hutch ms':>10}{'podman exec ms':>16}{'distrobox ms':>14}{'fastest alt/hutch':>19}")
targets = []
for name in ["busybox", "debian"]:
    res = json.load(open(f"{work}/{name}.json"))["results"]
    med = {r["command"]: r["median"] * 1000 for r in res}
    h = med["hutch"]
    alts = {k: v for k, v in med.items() if k != "hutch"}
    fastest = min(alts, key=alts.get)
    d = f"{med['distrobox']:.1f}" if "distrobox" in med else "n/a"
    ratio = alts[fastest] / h
    print(f"{name:<9}{h:>10.1f}{med['podman']:>16.1f}{d:>14}{ratio:>18.1f}x")
    targets.append(f"{name}: hutch {h:.1f} ms, {ratio:.1f}x faster than {fastest}")
print("distrobox: Debian only (distrobox-init installs packages with the image's package manager)")
if dbx_why:
    print(f"distrobox n/a: {dbx_why}")
print("target (under 50 ms, at least 10x faster than the fastest alternative): " + "; ".join(targets))
PY
