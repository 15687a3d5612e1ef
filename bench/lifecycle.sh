#!/usr/bin/env bash
# bench/lifecycle.sh — a container's life without a daemon, side by side
# with rootless Podman (conmon, fuse-overlayfs storage, runc, slirp4netns),
# in one run, on the busybox fixture:
#   run -d          `run -d` until it returns (the command runs)
#   exec true       `exec C true` into a running container
#   run --rm true   for scale: a whole container start (hutch's target for
#                   `exec true` is within 2x of this)
#   stop            `stop` of a container whose command exits on SIGTERM
#   commit 100 MB   `commit` of a container that wrote 100 MB
#   serving RSS     what stays in memory per running container with a
#                   published port: hutch's keeper (overlay + network +
#                   log) vs Podman's conmon + fuse-overlayfs + slirp4netns
# Prints medians and podman/hutch ratios from the same run.
#
# Usage: bench/lifecycle.sh [RUNS]   (RUNS for the fast rows, default 20;
# as root it re-runs itself as the test user created by tests/run.sh)
set -euo pipefail
RUNS=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}

. "$here/lib.sh"
as_test_user "$0" "$@"

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in podman conmon fuse-overlayfs slirp4netns runc python3; do
  command -v "$t" >/dev/null || { echo "bench/lifecycle: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
for f in busybox-oci.tar busybox-docker.tar; do
  [ -f "$FIX/$f" ] || { echo "bench/lifecycle: $FIX/$f is missing: run tests/run.sh once to build the fixtures"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hbl.XXXXXX")   # short: podman limits --runroot length
PODMAN=(podman --root "$work/pr" --runroot "$work/prr" --storage-driver overlay
        --storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)
cleanup() {
  "$HUTCH" rm -f $("$HUTCH" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  "${PODMAN[@]}" rm -f -a -t 0 >/dev/null 2>&1 || true
  "${PODMAN[@]}" unshare rm -rf "$work/pr" 2>/dev/null || true
  chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
export HUTCH_ROOT=$work/store
"$HUTCH" load -q "$FIX/busybox-oci.tar" >/dev/null
"${PODMAN[@]}" load -q -i "$FIX/busybox-docker.tar" >/dev/null
pimg=$("${PODMAN[@]}" images -q | head -n1)

echo "container lifecycle, $RUNS runs for the fast rows, $(nproc) cores, $(uname -r)"
echo "hutch $("$HUTCH" --version | cut -d' ' -f2), $(podman --version), $(runc --version | head -n1)"

python3 - "$RUNS" "$HUTCH" "$pimg" "${PODMAN[@]}" <<'PY'
import os, statistics, subprocess, sys, time

runs = int(sys.argv[1])
hutch = [sys.argv[2]]
pimg = sys.argv[3]
podman = sys.argv[4:]
DEVNULL = subprocess.DEVNULL

def sh(cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        sys.exit(f"bench/lifecycle: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()}")
    return r.stdout.decode().strip()

def timed(cmd):
    t0 = time.perf_counter()
    sh(cmd)
    return time.perf_counter() - t0

# The image argument and run flags of each tool.
tools = {
    "hutch": dict(cli=hutch, img="busybox", rm=["rm", "-f"], net=["--network", "none"]),
    "podman": dict(cli=podman, img=pimg, rm=["rm", "-f", "-t", "0"], net=["--network", "none"]),
}
# Exits on SIGTERM as its own PID 1 would not by default (Podman runs
# the command as PID 1): a trap, and `wait` that the signal interrupts.
TERMINATES = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
rows = {}

def row(name, t, samples):
    rows.setdefault(name, {})[t] = statistics.median(samples)

for t, c in tools.items():
    cli = c["cli"]
    # run -d: until it returns.
    s = []
    for i in range(runs):
        s.append(timed(cli + ["run", "-d", "--name", f"d{i}"] + c["net"] + [c["img"]] + TERMINATES))
    row("run -d", t, s)
    # exec true into one of them.
    s = [timed(cli + ["exec", "d0", "true"]) for _ in range(runs)]
    row("exec true", t, s)
    # stop: each container exits on SIGTERM.
    s = [timed(cli + ["stop", f"d{i}"]) for i in range(runs)]
    row("stop", t, s)
    sh(cli + c["rm"] + [f"d{i}" for i in range(runs)])
    # run --rm true, for scale.
    s = [timed(cli + ["run", "--rm"] + c["net"] + [c["img"], "true"]) for _ in range(runs)]
    row("run --rm true", t, s)
    # commit of a 100 MB change (3 times).
    s = []
    for i in range(3):
        sh(cli + ["run", "--name", f"w{i}"] + c["net"] + [c["img"], "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=100"])
        s.append(timed(cli + ["commit", f"w{i}", f"localhost/committed:{i}"]))
        sh(cli + c["rm"] + [f"w{i}"])
    row("commit 100 MB", t, s)

def rss_kib(pid):
    # Resident set size, from /proc/PID/status (readable for every process
    # of the user; smaps is not, for Podman's helpers in its user
    # namespace). Pages that hutch's forked processes share are counted in
    # each of them: hutch's figure is an upper bound.
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(p))
    return out

def tree(pid):
    out = [pid]
    for c in children(pid):
        out += tree(c)
    return out

def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()

def procs_named(names):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in names:
            out.append((comm, int(p)))
    return out

# Memory while serving: a published port, some requests answered.
import socket, urllib.request
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
SERVE = ["sh", "-c", "mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 8080 -h /www"]
def fetch(port):
    for _ in range(100):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        except OSError:
            time.sleep(0.1)
    sys.exit("bench/lifecycle: the web server did not answer")
mem = {}
port = free_port()
sh(hutch + ["run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080", "busybox"] + SERVE)
for _ in range(50):
    fetch(port)
# hutch's processes serving it: the keeper and what it forked (its run,
# the container's init and relay), not the command (httpd).
keepers = [p for c, p in procs_named({"hutch"}) if b"__keep" in open(f"/proc/{p}/cmdline", "rb").read()]
roots = [p for p in keepers if children(p) and all(q not in keepers for q in [int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])])]
if len(roots) != 1:
    sys.exit(f"bench/lifecycle: expected one keeper, found {roots}")
serving = [p for p in tree(roots[0]) if comm(p) != "httpd"]
mem["hutch"] = (sum(rss_kib(p) for p in serving), f"keeper tree, {len(serving)} processes")
sh(hutch + ["rm", "-f", "web"])
port = free_port()
sh(podman + ["run", "-d", "--name", "web", "--network", "slirp4netns", "-p", f"127.0.0.1:{port}:8080", pimg] + SERVE)
for _ in range(50):
    fetch(port)
parts = procs_named({"conmon", "fuse-overlayfs", "slirp4netns"})
mem["podman"] = (sum(rss_kib(p) for _, p in parts), " + ".join(sorted({c for c, _ in parts})))
sh(podman + ["rm", "-f", "-t", "0", "web"])

print(f"{'row':<16}{'hutch ms':>10}{'podman ms':>11}{'podman/hutch':>14}")
for name, r in rows.items():
    h, p = r["hutch"] * 1000, r["podman"] * 1000
    print(f"{name:<16}{h:>10.1f}{p:>11.1f}{p / h:>13.1f}x")
print(f"exec true / run --rm true (hutch): {rows['exec true']['hutch'] / rows['run --rm true']['hutch']:.2f}")
h, p = mem["hutch"][0], mem["podman"][0]
print(f"serving RSS: hutch {h / 1024:.1f} MiB ({mem['hutch'][1]}), podman {p / 1024:.1f} MiB ({mem['podman'][1]}), podman/hutch {p / h:.1f}x")
PY
