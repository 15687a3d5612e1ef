#!/usr/bin/env bash
# pjdfstest on hutch's FUSE overlay, against a tmpfs in the same kind of user
# namespace (the control: what the namespace itself refuses) and against the
# kernel's overlayfs, with a one-id map and with a subuid range.
#
#   tests/conformance/pjdfstest.sh [--map single|range|both] [--no-kernel]
#                                  [--jobs N] [--logs DIR] [TEST...]
#   tests/conformance/pjdfstest.sh --report DIR [--map ...] [--no-kernel]
#
# TEST: test directories or files under pjdfstest's tests/ (`chown`,
# `rename/09.t`); default all 238 files (8,798 tests). --jobs: test files prove
# runs at a time (default 4: the suite mostly sleeps, and every test works on
# names of its own; -j1 gives the same failures). Each run takes about 90 s on
# a 2-core VM with -j4 (4 minutes with -j1), so all six take about 9 minutes.
#
# For each map it runs, as the unprivileged test user:
#   control  hutch run --tmpfs DIR host ...   pjdfstest in a tmpfs
#   hutch    hutch run host ...               pjdfstest in DIR on the container's
#            root, the FUSE overlay (the `host` image: the host's root
#            filesystem is the lower layer)
#   kernel   unshare --mount (same map) + mount -t overlay -o userxattr
#            (skipped with --no-kernel: the bar is then the reference figure of
#            ../shared/conformance/README.md, +2 in both maps)
# Test directory: hutch runs pjdfstest in
# $HUTCH_FIXTURES/conformance/lower-USER/pjd, whose parent is a host directory
# owned by the user (created by the root part of this script): with a one-id
# map the host's root-owned directories show as nobody's in the container and
# root there cannot create anything in them (nor could it on the kernel
# overlay). The kernel runs use a fresh empty lower layer instead.
# HUTCH_IDMAP=single gives hutch the one-id map (0 -> your uid); without it
# hutch maps 0 -> your uid and 1..65536 -> your subuid range, and the kernel
# runs get the same maps from unshare --map-root-user [--map-users].
#
# Both hutch runs use the same profile, written by this script: `--network
# none`, seccomp "unconfined" and every capability (inside the user namespace),
# as root in the kernel overlay's run has: pjdfstest needs mknod, chown to any
# id, and so on, and the point is the overlay, not hutch's confinement.
#
# It prints, per map: the failures of each run, hutch's failures beyond the
# control by test file (failed test numbers), and the kernel overlay's count
# beyond the control. Exit status 1 when, in some map, hutch fails more tests
# beyond the control than the kernel overlay does; 2 on a usage or setup error.
#
# As root it builds pjdfstest once into the fixture cache
# (tests/conformance/build.sh), builds hutch (`cargo build --release`, or
# takes $HUTCH_BIN), and runs itself as hutch-test ($HUTCH_TEST_USER). As
# another user it needs the cached build ($PJDFSTEST_DIR, default
# $HUTCH_FIXTURES/conformance/pjdfstest-85a8aea9) and hutch ($HUTCH_BIN, else
# `hutch` on PATH). Logs of every run are kept in --logs DIR when given;
# --report DIR prints the comparison again from such logs, running nothing.
set -euo pipefail

commit=85a8aea9
reference_bar=2   # kernel overlayfs (userxattr), ../shared/conformance/README.md
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixtures=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}
test_user=${HUTCH_TEST_USER:-hutch-test}

usage() { sed -n '2,6p' "$0" >&2; exit 2; }
maps=(single range); kernel=1; jobs=4; logs=""; tests=(); report=0
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --map) shift; case ${1:-} in single|range) maps=("$1") ;; both) maps=(single range) ;; *) usage ;; esac ;;
        --no-kernel) kernel=0 ;;
        --jobs|-j) shift; jobs=${1:-}; [[ $jobs =~ ^[1-9][0-9]*$ ]] || usage ;;
        --logs) shift; logs=${1:-}; [ -n "$logs" ] || usage ;;
        --report) shift; logs=${1:-}; report=1; [ -d "$logs" ] || usage ;;
        -h|--help) sed -n '2,46p' "$0"; exit 0 ;;
        -*) echo "pjdfstest.sh: unknown option $1" >&2; usage ;;
        *) tests+=("$1") ;;
    esac
    shift
done

# ------------------------------------------------------------ as root
if [ "$(id -u)" = 0 ]; then
    repo=$(cd "$here/../.." && pwd)
    bash "$here/build.sh" "$fixtures" || exit 2
    stage=$(mktemp -d /var/tmp/hutch-conformance.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    if [ $report = 1 ]; then
        cp /bin/true "$stage/hutch"   # runs nothing
    elif [ -n "${HUTCH_BIN:-}" ]; then
        cp "$HUTCH_BIN" "$stage/hutch"
    else
        (cd "$repo" && cargo build --release --quiet) || exit 2
        cp "${CARGO_TARGET_DIR:-$repo/target}/release/hutch" "$stage/hutch"
    fi
    cp "$here/pjdfstest.sh" "$stage/"
    # The test directory's parent on the host (see "test directory" above).
    install -d -o "$test_user" -g "$(id -g "$test_user")" -m 0755 "$fixtures/conformance/lower-$test_user"
    if [ -n "$logs" ]; then mkdir -p "$logs"; chown "$test_user:" "$logs"; fi
    chmod -R a+rX "$stage"
    uid=$(id -u "$test_user")
    if [ ! -d "/run/user/$uid" ]; then
        mkdir -p "/run/user/$uid"; chown "$test_user:" "/run/user/$uid"; chmod 0700 "/run/user/$uid"
    fi
    rc=0
    runuser -u "$test_user" -- env -i HUTCH_BIN="$stage/hutch" HUTCH_FIXTURES="$fixtures" \
        PJDFSTEST_DIR="$(bash "$here/build.sh" --dir "$fixtures")" \
        HOME="$(getent passwd "$test_user" | cut -d: -f6)" USER="$test_user" LOGNAME="$test_user" \
        XDG_RUNTIME_DIR="/run/user/$uid" PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin \
        LANG=C.UTF-8 ${TMPDIR:+TMPDIR="$TMPDIR"} \
        bash "$stage/pjdfstest.sh" "${args[@]}" || rc=$?
    exit "$rc"
fi

# ------------------------------------------------------------ as the test user
die() { echo "pjdfstest.sh: $*" >&2; exit 2; }
pjd=${PJDFSTEST_DIR:-$fixtures/conformance/pjdfstest-$commit}
[ -x "$pjd/pjdfstest" ] && [ -d "$pjd/tests" ] ||
    die "pjdfstest is not built in $pjd: run \`sudo tests/conformance/build.sh\` (or this script as root) once"
if [ -f "$here/build.sh" ] && [ -z "${PJDFSTEST_DIR:-}" ]; then
    rc=0; bash "$here/build.sh" --check "$fixtures" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] && echo "pjdfstest.sh: WARNING: the pjdfstest build in $pjd is stale (sudo tests/conformance/build.sh)" >&2
fi
hutch=${HUTCH_BIN:-$(command -v hutch || true)}
[ -n "$hutch" ] && [ -x "$hutch" ] || die "no hutch binary: set HUTCH_BIN"
command -v prove >/dev/null || die "prove (perl) not found on the host; the container runs the host's"
for t in "${tests[@]}"; do
    case $t in /*|*..*) die "TEST is a path under pjdfstest's tests/, like chown or rename/09.t: $t" ;; esac
    [ -e "$pjd/tests/$t" ] || die "no $t in $pjd/tests"
done
[ ${#tests[@]} -gt 0 ] || tests=(.)
lowerdir=$fixtures/conformance/lower-$(id -un)
[ -d "$lowerdir" ] && [ "$(stat -c %u "$lowerdir")" = "$(id -u)" ] ||
    die "$lowerdir must be a directory owned by $(id -un): sudo install -d -o $(id -un) -m 0755 $lowerdir"
testdir=$lowerdir/pjd

work=$(mktemp -d "${TMPDIR:-/tmp}/pjdfstest.XXXXXX")
logs=${logs:-$work/logs}
mkdir -p "$logs"
cleanup_dirs=()
cleanup() {
    local d
    for d in "${cleanup_dirs[@]}"; do rm_ns "$d" 2>/dev/null || true; done
    rm -rf "$work" 2>/dev/null || echo "pjdfstest.sh: could not remove all of $work" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

caps=$(printf '"%s",' CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP \
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE \
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME \
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG \
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
cat >"$work/profile.toml" <<EOF
description = "pjdfstest: every capability in the user namespace, no seccomp filter"
extends = "default"
[filesystem]
mounts = ["$pjd:/pjdfstest:ro"]
[network]
mode = "none"
[security]
seccomp = "unconfined"
capabilities = [${caps%,}]
EOF

# The command every run executes in its test directory ($1: the pjdfstest
# directory as seen there; then the TEST names): says where it runs and with
# which map (checked below), then runs prove on the test files by absolute
# path (the tests work in the directory they start in).
inner='d=$1; shift
echo "pjd-where: $(findmnt -n -o TARGET -T .) $(findmnt -n -o FSTYPE -T .) uidmap-lines=$(wc -l </proc/self/uid_map) uid=$(id -u)"
start=$(pwd)
cd "$d/tests" && files=$(find "$@" -name "*.t" | sort) && cd "$start" || exit 1
set --
for f in $files; do set -- "$@" "$d/tests/${f#./}"; done
exec prove -j'"$jobs"' "$@" 2>&1'

declare -A secs status
run_hutch() { # MAP KIND(control|hutch)
    local map=$1 kind=$2 t0 rc=0 extra=() envs=()
    [ "$map" = single ] && envs=(HUTCH_IDMAP=single)
    [ "$kind" = control ] && extra=(--tmpfs "$testdir")
    t0=$(date +%s)
    env "${envs[@]}" HUTCH_ROOT="$work/store" "$hutch" run --rm --network none --profile "$work/profile.toml" \
        "${extra[@]}" host sh -c 'mkdir -p "$1" && cd "$1" && shift && exec sh -c "$0" pjd-inner "$@"' \
        "$inner" "$testdir" /pjdfstest "${tests[@]}" \
        </dev/null >"$logs/$kind-$map.log" 2>&1 || rc=$?
    secs[$kind-$map]=$(( $(date +%s) - t0 ))
    status[$kind-$map]=$rc
}
ns_map() { # MAP: unshare's options for the map hutch uses
    if [ "$1" = single ]; then echo --map-root-user
    else echo --map-root-user --map-users=$(sub /etc/subuid),1,65536 --map-groups=$(sub /etc/subgid),1,65536; fi
}
sub() { # FILE: start of the test user's subordinate range
    awk -F: -v u="$(id -un)" -v i="$(id -u)" '($1==u || $1==i) && $3 >= 65536 { print $2; exit }' "$1"
}
rm_ns() { # DIR: remove a kernel run's directories (files owned by subordinate ids)
    unshare $(ns_map range) rm -rf "$1" 2>/dev/null || unshare --map-root-user rm -rf "$1"
}
run_kernel() { # MAP
    local map=$1 d=$work/kernel-$1 t0 rc=0
    mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/mnt"
    cleanup_dirs+=("$d")
    t0=$(date +%s)
    # shellcheck disable=SC2046
    unshare --mount $(ns_map "$map") sh -c '
        d=$1; shift
        mount -t overlay overlay -o "userxattr,lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/mnt" ||
            { echo "pjd-mount-failed"; exit 1; }
        mkdir "$d/mnt/pjd" && cd "$d/mnt/pjd" && exec sh -c "$0" pjd-inner "$@"' "$inner" "$d" "$pjd" "${tests[@]}" \
        </dev/null >"$logs/kernel-$map.log" 2>&1 || rc=$?
    secs[kernel-$map]=$(( $(date +%s) - t0 ))
    status[kernel-$map]=$rc
    rm_ns "$d" || true
}

# failures LOG: one line per failure, "FILE NUMBER" (FILE relative to tests/),
# "FILE exit" for a non-zero exit status, "FILE plan" for a TAP parse error
# (a test file that died half-way).
failures() {
    awk '
    function emit(s,   n, i, a, r) {
        n = split(s, a, /, */)
        for (i = 1; i <= n; i++) {
            if (a[i] ~ /^[0-9]+-[0-9]+$/) { split(a[i], r, "-"); for (j = r[1]; j <= r[2]; j++) print f, j }
            else if (a[i] ~ /^[0-9]+$/) print f, a[i]
        }
    }
    /^Test Summary Report/ { on = 1; next }
    !on { next }
    /^Files=/ { exit }
    /^[^ ].*\(Wstat: [0-9]+ Tests: [0-9]+ Failed: [0-9]+\)/ {
        f = $0; sub(/ *\(Wstat:.*/, "", f); sub(/.*\/tests\//, "", f)
        w = $0; sub(/.*Wstat: /, "", w); sub(/ .*/, "", w)
        if (w != "0") print f, "exit"
        mode = ""; next
    }
    /^  Failed tests?:/ { mode = "f"; s = $0; sub(/^  Failed tests?: */, "", s); emit(s); next }
    /^  Parse errors:/ { print f, "plan"; mode = ""; next }
    /^  [A-Z]/ { mode = ""; next }
    /^ +[0-9]/ && mode == "f" { s = $0; sub(/^ +/, "", s); emit(s); next }
    ' "$1" | sort -u
}
# ranges: "FILE N" lines of one file on stdin -> "3-5, 9, exit"
ranges() {
    awk '{ print $2 }' | sort -n | awk '
        function flush() { if (s != "") out = (out == "" ? "" : out ", ") (s == e ? s : s "-" e) }
        /^[0-9]+$/ { if (s != "" && $1 == e + 1) { e = $1; next }
                     flush(); s = e = $1; next }
        { words = words ", " $1 }
        END { flush(); if (out == "") sub(/^, /, "", words); print out words }'
}
by_file() { # EXTRA: "FILE N" lines -> one line per file: count, test numbers (wrapped)
    local f nums
    awk '{ print $1 }' "$1" | uniq | while read -r f; do
        nums=$(grep "^$f " "$1" | ranges | fold -s -w 76 | sed 's/ *$//')
        printf '    %-16s %5s  %s\n' "$f" "$(grep -c "^$f " "$1")" "$(head -n1 <<<"$nums")"
        tail -n +2 <<<"$nums" | sed 's/^/                           /'
    done
}
check_where() { # LOG KIND MAP
    local w lines=2; w=$(grep -m1 '^pjd-where:' "$1" || true)
    [ "$3" = single ] && lines=1
    case $2 in
        hutch) [[ $w == "pjd-where: / fuse"* ]] ;;
        control) [[ $w == "pjd-where: $testdir tmpfs"* ]] ;;
        kernel) [[ $w == *" overlay "* ]] ;;
    esac && [[ $w == *" uidmap-lines=$lines uid=0" ]] || {
        echo "pjdfstest.sh: the $2 run did not run where it should (${w:-no pjd-where line}); its log:" >&2
        tail -n 20 "$1" | sed 's/^/  /' >&2
        return 1
    }
    grep -q '^Files=' "$1" || { echo "pjdfstest.sh: the $2 run ended without prove's summary; its log:" >&2; tail -n 20 "$1" | sed 's/^/  /' >&2; return 1; }
}

if [ $report = 1 ]; then echo "pjdfstest $commit: the runs logged in $logs"
else echo "pjdfstest $commit ($pjd) as $(id -un), hutch $("$hutch" --version 2>/dev/null | head -n1), kernel $(uname -r), prove -j$jobs"; fi
echo "tests: ${tests[*]}"
echo "profile of both hutch runs: --network none, seccomp unconfined, every capability (in the user namespace)"
verdict=0
for map in "${maps[@]}"; do
    case $map in single) label="one-id map (HUTCH_IDMAP=single; unshare --map-root-user)" ;;
                 range) label="subuid range (hutch's default; unshare --map-root-user --map-users)" ;; esac
    echo
    echo "==== $label"
    kinds=(control hutch); [ $kernel = 1 ] && kinds+=(kernel)
    for k in "${kinds[@]}"; do
        [ $report = 1 ] || echo "  running $k..."
        if [ $report = 1 ]; then secs[$k-$map]=-
        elif [ "$k" = kernel ]; then run_kernel "$map"; else run_hutch "$map" "$k"; fi
        log=$logs/$k-$map.log
        if [ "$k" = kernel ] && grep -q '^pjd-mount-failed' "$log"; then
            echo "  the kernel overlay could not be mounted unprivileged here (see $log); the bar is the reference figure"
            continue
        fi
        check_where "$log" "$k" "$map" || exit 2
        failures "$log" >"$work/$k-$map.fail"
    done
    echo
    printf '  %-18s %8s %16s %8s\n' run failures "beyond control" time
    for k in control hutch kernel; do
        [ -f "$work/$k-$map.fail" ] || continue
        n=$(wc -l <"$work/$k-$map.fail")
        comm -23 "$work/$k-$map.fail" "$work/control-$map.fail" >"$work/$k-$map.extra"
        x=$(wc -l <"$work/$k-$map.extra")
        [ "$k" = control ] && x=-
        [ "$k" != control ] && x=+$x
        t=${secs[$k-$map]}; [ "$t" = - ] || t=${t}s
        printf '  %-18s %8s %16s %8s\n' "$k" "$n" "$x" "$t"
    done
    head -n1 <(grep '^Files=' "$logs/control-$map.log") | sed 's/^/  control: /'
    hx=$(wc -l <"$work/hutch-$map.extra")
    if [ -f "$work/kernel-$map.extra" ]; then
        bar=$(wc -l <"$work/kernel-$map.extra"); barsrc="the kernel overlay measured here"
    else
        bar=$reference_bar; barsrc="the kernel overlay's reference figure (../shared/conformance/README.md; not measured)"
    fi
    echo
    echo "  hutch fails $hx test(s) beyond the control; the bar is +$bar, $barsrc"
    if [ "$hx" -gt 0 ]; then
        echo "  beyond the control on hutch, by test file (failed test numbers):"
        by_file "$work/hutch-$map.extra"
    fi
    if [ -f "$work/kernel-$map.extra" ] && [ -s "$work/kernel-$map.extra" ]; then
        echo "  beyond the control on the kernel overlay:"
        by_file "$work/kernel-$map.extra"
    fi
    if [ "$hx" -gt "$bar" ]; then
        echo "  FAIL ($map): hutch +$hx > kernel +$bar"; verdict=1
    else
        echo "  ok ($map): hutch +$hx <= kernel +$bar"
    fi
done
[ "$logs" = "$work/logs" ] || echo "logs: $logs"
exit "$verdict"
