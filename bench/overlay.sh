#!/usr/bin/env bash
# bench/overlay.sh — hutch's FUSE overlay against the alternatives, side by
# side in one run:
#   hutch overlay                      (FUSE, served by hutch)
#   kernel overlayfs                   (unshare -Urm, -o userxattr)
#   fuse-overlayfs                     (unshare -Urm, the Debian package)
#   bare                               (the same files in a plain directory)
# Lowers: a data layer (a big file, copy-up files) over the unpacked Debian
# fixture layer (hutch load of debian-oci.tar into a throwaway store).
# Every tool gets a fresh upper dir and a fresh mount; a python driver runs
# the workloads inside the mount and times them itself (the mount has to
# outlive each run, so hyperfine cannot be the driver here).
#
# Usage: bench/overlay.sh [--quick] [--reps N]
#   as a normal user; as root it re-runs itself as the test user hutch-test.
# Defaults take about 5-8 minutes; --quick (smaller files, 2 repetitions)
# about 1-2 minutes. HUTCH_BIN picks the hutch binary (default: a release
# build in target/); without `hutch overlay` the hutch column reads n/a.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
FIX=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}
QUICK=0
REPS=5
args=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1; REPS=2; shift ;;
    --reps) REPS=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/overlay: unknown argument $1" >&2; exit 2 ;;
  esac
done

. "$here/lib.sh"
: "${TMPDIR:=/var/tmp}"; export TMPDIR   # its work dirs, as a normal user or not
as_test_user "$0" ${args[@]+"${args[@]}"}   # the options, not what parsing left

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in python3 unshare fuse-overlayfs find du tar dd; do
  command -v "$t" >/dev/null || { echo "bench/overlay: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
[ -f "$FIX/debian-oci.tar" ] || { echo "bench/overlay: $FIX/debian-oci.tar is missing: run tests/run.sh once to build the fixtures"; exit 1; }
[ -x "$HUTCH" ] || { echo "bench/overlay: no hutch binary at $HUTCH: cargo build --release"; exit 1; }
have_hutch=1
"$HUTCH" overlay --help >/dev/null 2>&1 || have_hutch=0

if [ $QUICK = 1 ]; then
  BIG_MB=256; COPY_MB=32; NSMALL=2000; NRAND=5000
else
  BIG_MB=1024; COPY_MB=100; NSMALL=10000; NRAND=20000
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/hutch-bench-overlay.XXXXXX")
cleanup() {
  chmod -R u+rwX "$work" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || unshare -Ur rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
t_start=$(date +%s)

# ------------------------------------------------------------------ layers
echo "setting up in $work ..."
store=$work/store
"$HUTCH" --root "$store" load -q "$FIX/debian-oci.tar" >"$work/id"
layer=$("$HUTCH" --root "$store" inspect "$(cat "$work/id")" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Layers"][-1]["Path"])')
# All tools read one copy of that layer without ownership records: with
# them, fuse-overlayfs 1.10 cannot list the layer at all (it wants a record
# on every entry once the layer root has one: ENODATA), and the kernel
# ignores them; so every tool sees the same tree, owned by root.
deb=$work/debian-layer
cp -a "$layer" "$deb"
python3 - "$deb" <<'PY'
import os, sys
for d, dirs, files in os.walk(sys.argv[1]):
    for p in [d] + [os.path.join(d, f) for f in files]:
        try:
            os.removexattr(p, "user.containers.override_stat", follow_symlinks=False)
        except OSError:
            pass
PY
data=$work/data
mkdir -p "$data"
dd if=/dev/urandom of="$data/big" bs=1M count="$BIG_MB" status=none
dd if=/dev/urandom of="$data/copyup_0" bs=1M count="$COPY_MB" status=none
for i in $(seq 1 $((REPS - 1))); do cp "$data/copyup_0" "$data/copyup_$i"; done
gzip -dc "$FIX/debian-rootfs.tar.gz" >"$work/debian.tar"
lowers=$data:$deb

# ------------------------------------------------------------------ driver
cat >"$work/driver.py" <<'PY'
import json, os, random, statistics, subprocess, sys, time

root, reps, nsmall, nrand, tarball = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
scratch = os.path.join(root, "bench-scratch")
os.makedirs(scratch, exist_ok=True)
big = os.path.join(root, "big")
res = {}

def timed(fn):
    os.sync()  # nobody pays for the previous repetition's writeback
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0

def med(fn, n=reps):
    return statistics.median(timed(fn) for _ in range(n))

def read_all(path=big):
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass

def rand4k():
    size = os.path.getsize(big)
    rng = random.Random(1)
    offs = [rng.randrange(size // 4096) * 4096 for _ in range(nrand)]
    fd = os.open(big, os.O_RDONLY)
    try:
        for o in offs:
            os.pread(fd, 4096, o)
    finally:
        os.close(fd)

def par2():
    ps = [subprocess.Popen(["dd", "if=" + big, "of=/dev/null", "bs=1M", "status=none"]) for _ in range(2)]
    for p in ps:
        if p.wait() != 0:
            sys.exit("dd failed")

def run(*cmd, ok=(0,)):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode not in ok:
        sys.exit("%s failed with %d" % (cmd, r.returncode))

def find_stat():
    # Exit 1: a few dirs are unreadable where the overlay applies the
    # layer's ownership records (/var/cache/apt/archives/partial is _apt's,
    # 0700, and uid 42 is not mapped); the rest is traversed all the same.
    run("find", root + "/usr", root + "/etc", root + "/var", "-printf", "%s %m %U %y\n", ok=(0, 1))

counter = iter(range(1000))

def small_files():
    d = os.path.join(scratch, "small%d" % next(counter))
    os.mkdir(d)
    blob = b"x" * 1024
    for i in range(nsmall):
        fd = os.open(os.path.join(d, "f%05d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, blob)
        os.close(fd)

def extract():
    d = os.path.join(scratch, "x%d" % next(counter))
    os.mkdir(d)
    run("tar", "-xf", tarball, "-C", d, "--no-same-owner")

copies = iter(range(reps))

def copyup():
    with open(os.path.join(root, "copyup_%d" % next(copies)), "ab") as f:
        f.write(b"!")

# The cheap rows get three times the repetitions: on a busy machine their
# spread is large.
fast = 3 * reps
res["seq read, cold (first read after mount)"] = timed(read_all)
res["seq read, warm"] = med(read_all, fast)
res["random 4 KiB reads"] = med(rand4k, fast)
res["seq read, 2 parallel readers"] = med(par2, fast)
res["find+stat Debian tree, first"] = timed(find_stat)
res["find+stat Debian tree, warm"] = med(find_stat, fast)
res["du -s /usr"] = med(lambda: run("du", "-s", root + "/usr", ok=(0, 1)), fast)
res["create+write small files"] = med(small_files)
res["extract Debian rootfs tar"] = med(extract, max(2, min(reps, 3)))
res["copy-up (append 1 byte)"] = med(copyup)
print(json.dumps(res))
PY

DRV=(python3 "$work/driver.py")
DARGS=("$REPS" "$NSMALL" "$NRAND" "$work/debian.tar")

run_tool() { # NAME: run the driver on that tool's mount, JSON to $work/NAME.json
  local name=$1 d=$work/run-$1
  mkdir -p "$d/upper" "$d/work" "$d/mnt"
  local t0=$SECONDS
  local cmd=("${DRV[@]}" "$d/mnt" "${DARGS[@]}")
  case $name in
    kernel)
      unshare -Urm sh -c 'mount -t overlay overlay -o "userxattr,lowerdir=$1,upperdir=$2,workdir=$3" "$4" || exit 99
                          shift 4; exec "$@"' sh "$lowers" "$d/upper" "$d/work" "$d/mnt" "${cmd[@]}" ;;
    fuse-overlayfs)
      unshare -Urm sh -c 'fuse-overlayfs -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" || exit 99
                          M=$4; shift 4; "$@"; r=$?; umount "$M"; exit $r' \
        sh "$lowers" "$d/upper" "$d/work" "$d/mnt" "${cmd[@]}" ;;
    hutch)
      "$HUTCH" overlay --lower "$lowers" --upper "$d/upper" --work "$d/work" "$d/mnt" -- "${cmd[@]}" ;;
    bare)
      # The same files, hardlinked into one plain dir (reads hit the same
      # inodes and page cache); run last, as its copy-up appends in place.
      cp -al "$deb/." "$d/mnt/"
      cp -al "$data/." "$d/mnt/"
      unshare -Ur "${cmd[@]}" ;;
  esac >"$work/$name.json" 2>"$work/$name.err" || {
    echo "  $name: FAILED (exit $?): $(tail -n 3 "$work/$name.err")"
    echo '{}' >"$work/$name.json"
    return 0
  }
  printf '  %-16s done in %ds\n' "$name" $((SECONDS - t0))
}

echo "running: $REPS repetitions (median; $((3 * REPS)) for the read and metadata rows), big file $BIG_MB MiB, copy-up file $COPY_MB MiB," \
     "$NSMALL small files, $NRAND random reads; $(nproc) cores, $(uname -r)"
tools=(kernel fuse-overlayfs)
if [ $have_hutch = 1 ]; then tools+=(hutch); else echo "  hutch: no \`hutch overlay\` in $HUTCH: column n/a"; echo '{}' >"$work/hutch.json"; fi
tools+=(bare)
# Runs are kept until the end (deleting gigabytes between tools would make
# the next one pay for the discards); sync so none pays for another's
# writeback.
for t in "${tools[@]}"; do sync; sleep 1; run_tool "$t"; done

python3 - "$work" "$BIG_MB" "$COPY_MB" "$NSMALL" "$NRAND" <<'PY'
import json, os, sys
work, big_mb, copy_mb, nsmall, nrand = sys.argv[1], *map(int, sys.argv[2:])
cols = ["bare", "kernel", "fuse-overlayfs", "hutch"]
res = {c: json.load(open(os.path.join(work, c + ".json"))) for c in cols}
rows = list(res["kernel"] or res["bare"] or res["fuse-overlayfs"])
label = {
    "seq read, cold (first read after mount)": f"seq read {big_mb} MiB, cold*",
    "seq read, warm": f"seq read {big_mb} MiB, warm",
    "random 4 KiB reads": f"{nrand} random 4 KiB reads",
    "seq read, 2 parallel readers": f"2 parallel seq readers x {big_mb} MiB",
    "create+write small files": f"create+write {nsmall} x 1 KiB files",
    "copy-up (append 1 byte)": f"copy-up {copy_mb} MiB (append 1 byte)",
}
def fmt(v):
    return "n/a" if v is None else f"{v:.3f}"
def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"
w = max(len(label.get(r, r)) for r in rows) + 2
print()
print(f"{'median seconds':<{w}}" + "".join(f"{c:>15}" for c in cols) + f"{'hutch/kernel':>14}{'hutch/fuse-ovl':>16}{'fuse-ovl/kernel':>17}")
for r in rows:
    v = {c: res[c].get(r) for c in cols}
    print(f"{label.get(r, r):<{w}}" + "".join(f"{fmt(v[c]):>15}" for c in cols)
          + f"{ratio(v['hutch'], v['kernel']):>14}{ratio(v['hutch'], v['fuse-overlayfs']):>16}"
          + f"{ratio(v['fuse-overlayfs'], v['kernel']):>17}")
print()
print("ratios are time ratios: below 1.00x hutch is faster.")
print("* cold = the first read through a fresh mount: the overlay's own caches are empty, but the")
print("  page cache of the layer file is warm (dropping caches needs root); for the kernel overlay")
print("  and bare, cold and warm are therefore the same thing.")
PY
echo "total $(( $(date +%s) - t_start ))s"
