#!/usr/bin/env bash
# tests/conformance/unionmount.sh — the unionmount-testsuite (the
# fuse-overlayfs CI suite; unmodified, from ../shared/conformance, commit
# f48a57d2, run from a scratch copy) with hutch's overlay as its FUSE
# program, as the unprivileged test user:
#   tests/conformance/unionmount.sh [--keep DIR] [TEST...]
#
# Four invocations, each test on its own (a fresh base directory, so one
# failure does not cascade): `./run --ov --fuse=PROG`, the same with
# `--xdev`, and the layer-rotation runs `--ov=3` and `--ov=3 --xdev`.
# PROG is hutch's fuse-overlayfs entry point (`hutch-overlayfs`, a symlink
# to the hutch binary), given by its full path: the suite mounts through
# mount(8), which resets PATH. `--xdev` is the suite's run of an overlay
# without redirect_dir (renaming a lower directory gives EXDEV): there PROG
# is a wrapper adding `-o redirect_dir=off`, as the kernel overlay gets no
# redirect_dir=on in that run. Tests the suite skips for an invocation
# (rename-exdev without --xdev; the four renames of lower directories with
# --xdev, which expect EXDEV there) are skipped here too.
#
# The suite wants a subordinate id range (its setup chowns to ids 1 and
# more) and root of a user and mount namespace: it runs in `unshare
# --map-root-user --map-auto --mount` (newuidmap, from the test user's
# /etc/subuid range). Before each layer rotation it writes
# /proc/sys/vm/drop_caches, which only the host's root may: an empty file
# is bind-mounted over it inside the namespace (the suite is unchanged).
#
# In the --xdev runs (no redirect_dir on either side), a test hutch fails
# is run again on the kernel overlay (`-o userxattr`, the configuration an
# unprivileged mount has): one the kernel fails too is reported as such and
# not counted. (The --ov=3 --xdev runs of hard-link-dir, rename-new-dir,
# rename-new-pop-dir and rename-mass-dir fail on the kernel: the suite
# expects a directory made before a layer rotation to rename without
# redirect_dir.)
# Prints PASS/FAIL per test and per invocation, then a summary; exit 1 when
# a test fails (beyond the kernel's, in --xdev), 2 on a setup error. As root it builds hutch (`cargo build
# --release`, or takes $HUTCH_BIN) and runs itself as hutch-test
# ($HUTCH_TEST_USER).
set -euo pipefail

commit=f48a57d2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
test_user=${HUTCH_TEST_USER:-hutch-test}
suite_src=${UNIONMOUNT_SRC:-$repo/../shared/conformance/unionmount-testsuite}

keep=""; tests=()
while [ $# -gt 0 ]; do
    case $1 in
        --keep) keep=$2; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        -*) echo "unionmount.sh: unknown option $1" >&2; exit 2 ;;
        *) tests+=("$1"); shift ;;
    esac
done

if [ "$(id -u)" = 0 ]; then
    id "$test_user" >/dev/null 2>&1 || { echo "unionmount.sh: no user $test_user: run tests/run.sh once (it prepares the host)" >&2; exit 2; }
    stage=$(mktemp -d /var/tmp/hutch-unionmount.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    if [ -n "${HUTCH_BIN:-}" ]; then
        cp "$HUTCH_BIN" "$stage/hutch"
    else
        (cd "$repo" && cargo build --release --quiet) || exit 2
        cp "${CARGO_TARGET_DIR:-$repo/target}/release/hutch" "$stage/hutch"
    fi
    cp "$here/unionmount.sh" "$stage/"
    cp -a "$suite_src" "$stage/suite-src"
    if [ -n "$keep" ]; then mkdir -p "$keep"; chown "$test_user:" "$keep"; fi
    chmod -R a+rX "$stage"; chown "$test_user:" "$stage"
    rc=0
    runuser -u "$test_user" -- env -i HUTCH_BIN="$stage/hutch" UNIONMOUNT_SRC="$stage/suite-src" \
        HOME="$(getent passwd "$test_user" | cut -d: -f6)" USER="$test_user" LOGNAME="$test_user" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin LANG=C.UTF-8 \
        bash "$stage/unionmount.sh" ${keep:+--keep "$keep"} "${tests[@]}" || rc=$?
    exit "$rc"
fi

# ------------------------------------------------------------ as the test user
die() { echo "unionmount.sh: $*" >&2; exit 2; }
[ -d "$suite_src" ] || die "no unionmount-testsuite at $suite_src (../shared/conformance beside the checkout)"
hutch=${HUTCH_BIN:-$(command -v hutch || true)}
[ -x "$hutch" ] || die "no hutch binary: set HUTCH_BIN"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"
command -v python3 >/dev/null || die "python3 is missing"

# No dot in it: the suite passes `fuse.PROG` as the type, split at dots.
work=$(mktemp -d "${TMPDIR:-/tmp}/hutch-um-XXXXXX")
cleanup() { chmod -R u+rwX "$work" 2>/dev/null || true; rm -rf "$work" 2>/dev/null || true; }
trap cleanup EXIT
# Searchable by all: the suite opens files as the user bin too.
chmod 0755 "$work"
mkdir -p "$work/bin" "$work/base"
# hutch takes fuse-overlayfs's command line under this name.
ln -s "$hutch" "$work/bin/hutch-overlayfs"
# The suite's --xdev run: the overlay without redirect_dir.
printf '#!/bin/sh\nexec %q -o redirect_dir=off "$@"\n' "$work/bin/hutch-overlayfs" \
    > "$work/bin/hutch-overlayfs-noredirect"
chmod 0755 "$work/bin/hutch-overlayfs-noredirect"
cp -a "$suite_src" "$work/suite"
: > "$work/drop_caches"
logs=${keep:-$work/logs}
mkdir -p "$logs"

# The suite's own list of tests, in its order.
if [ ${#tests[@]} -eq 0 ]; then
    mapfile -t tests < <(python3 - "$work/suite/run" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
start = s.index("tests = [")
block = s[start:s.index("if len(args) > 0:", start)]
print("\n".join(re.findall(r'"([a-z0-9-]+)"', block)))
PY
)
fi
[ ${#tests[@]} -gt 0 ] || die "found no tests in the suite's run script"

# One invocation's tests, each alone, inside one namespace.
cat > "$work/inside.sh" <<'SH'
set -u
work=$1; out=$2; shift 2
mount --bind "$work/drop_caches" /proc/sys/vm/drop_caches || { echo "SETUP cannot stand in for drop_caches" >> "$out"; exit 2; }
cd "$work/suite"
export UNIONMOUNT_BASEDIR="$work/base"
opts=(); tests=()
for a in "$@"; do case $a in --*) opts+=("$a") ;; *) tests+=("$a") ;; esac; done
xdev=0; case " ${opts[*]} " in *" --xdev "*) xdev=1 ;; esac
prog=$work/bin/hutch-overlayfs
[ $xdev = 0 ] || prog=$work/bin/hutch-overlayfs-noredirect
# What a failed test left mounted (deepest first), so the next starts clean.
clean() {
    awk -v w="$work/base" '$2 == "/mnt" || index($2, w) == 1 {print $2}' /proc/self/mounts \
        | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$work/base"/* 2>/dev/null
}
for t in "${tests[@]}"; do
    if [ $xdev = 0 ] && [ "$t" = rename-exdev ]; then continue; fi
    if [ $xdev = 1 ]; then case $t in rename-dir|rename-empty-dir|rename-pop-dir|rename-move-dir) continue ;; esac; fi
    clean
    # The suite's flags go in its order: --ov[=N], --fuse=, then --xdev.
    if timeout 120 ./run "${opts[0]}" --fuse="$prog" "${opts[@]:1}" "$t" > "$out.$t.log" 2>&1; then
        echo "PASS $t" >> "$out"
    elif [ $xdev = 1 ]; then
        # Without redirect_dir, the kernel overlay (userxattr, the same
        # configuration) is the control: a test it fails too is the
        # suite's expectation, not the overlay's fault.
        clean
        if UNIONMOUNT_MNTOPTIONS=userxattr timeout 120 ./run "${opts[@]}" "$t" > "$out.$t.kernel.log" 2>&1; then
            echo "FAIL $t" >> "$out"
        else
            echo "KERNEL $t" >> "$out"
        fi
    else
        echo "FAIL $t" >> "$out"
    fi
done
clean
SH

total_fail=0
summary=()
for inv in "--ov" "--ov --xdev" "--ov=3" "--ov=3 --xdev"; do
    name=$(echo "$inv" | tr -d ' -' | tr '=' '_')
    out="$logs/$name"
    : > "$out"
    # shellcheck disable=SC2086
    unshare --map-root-user --map-auto --mount bash "$work/inside.sh" "$work" "$out" $inv "${tests[@]}" \
        || die "could not run the suite in a user namespace with a subuid range (unshare --map-auto; see $out)"
    pass=$(grep -c '^PASS' "$out" || true); fail=$(grep -c '^FAIL' "$out" || true)
    total_fail=$((total_fail + fail))
    failed=$(grep '^FAIL' "$out" | cut -d' ' -f2 | tr '\n' ' ' || true)
    kernel=$(grep '^KERNEL' "$out" | cut -d' ' -f2 | tr '\n' ' ' || true)
    summary+=("$(printf '%-16s %3d passed %3d failed  %s' "$inv" "$pass" "$fail" "$failed")${kernel:+ (failed as on the kernel overlay: $kernel)}")
    echo "==== ./run $inv --fuse=hutch-overlayfs: $pass passed, $fail failed${failed:+ ($failed)}${kernel:+, as the kernel overlay: $kernel}"
done
echo
echo "unionmount-testsuite $commit, hutch $("$hutch" --version | cut -d' ' -f2), kernel $(uname -r):"
printf '  %s\n' "${summary[@]}"
[ -n "$keep" ] && echo "logs: $keep"
[ "$total_fail" = 0 ] || exit 1
