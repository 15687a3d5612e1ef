#!/usr/bin/env bash
# Build pjdfstest (a third-party filesystem test suite) once into the fixture
# cache, from an unmodified copy kept beside the checkout. Its code is never
# copied into this repository: the build works on a scratch copy and installs
# only the `pjdfstest` binary, its `tests/` scripts and its licence.
#
#   tests/conformance/build.sh [OUTDIR]          build when missing or stale (root)
#   tests/conformance/build.sh --check [OUTDIR]  exit 0 when built and up to date,
#                                                1 when missing, 2 when stale
#   tests/conformance/build.sh --dir [OUTDIR]    print the build's directory
#
# OUTDIR defaults to $HUTCH_FIXTURES, else /var/cache/hutch-fixtures; the
# build goes to OUTDIR/conformance/pjdfstest-<commit>/, with a stamp holding
# the sha256 of the sources and of this script (rebuilt when either changes).
# The sources are $HUTCH_CONFORMANCE_SRC, else ../shared/conformance/pjdfstest
# beside the checkout (where CI has it). Debian packages needed: autoconf
# automake libtool gcc make (tests/host-setup.sh installs them).
set -euo pipefail

commit=85a8aea9   # the commit ../shared/conformance/README.md names
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
mode=build
case ${1:-} in
    --check) mode=check; shift ;;
    --dir) mode=dir; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
esac
out=${1:-${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}}/conformance
dest=$out/pjdfstest-$commit
src=${HUTCH_CONFORMANCE_SRC:-$repo/../shared/conformance/pjdfstest}

if [ "$mode" = dir ]; then echo "$dest"; exit 0; fi

want_hash() {
    [ -f "$src/pjdfstest.c" ] || {
        echo "conformance: no pjdfstest sources in $src (CI has ../shared/conformance/ beside the" \
             "checkout; elsewhere set HUTCH_CONFORMANCE_SRC to an unmodified copy of pjdfstest $commit)" >&2
        exit 1
    }
    { (cd "$src" && find . -type f ! -path './.git/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
      sha256sum <"$here/build.sh"; } | sha256sum | cut -d' ' -f1
}
up_to_date() {
    [ -x "$dest/pjdfstest" ] && [ -d "$dest/tests" ] && [ "$(cat "$dest/.stamp" 2>/dev/null)" = "$(want_hash)" ]
}

if [ "$mode" = check ]; then
    [ -x "$dest/pjdfstest" ] && [ -f "$dest/.stamp" ] || { echo "conformance: pjdfstest is not built in $dest" >&2; exit 1; }
    [ -f "$src/pjdfstest.c" ] || exit 0   # no sources here to compare with
    up_to_date || { echo "conformance: the pjdfstest build in $dest is stale" >&2; exit 2; }
    exit 0
fi

h=$(want_hash)
if up_to_date; then echo "conformance: pjdfstest $commit up to date in $dest"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "conformance: building pjdfstest into $dest needs root: sudo $0" >&2; exit 1; }
for t in autoreconf automake libtoolize gcc make; do
    command -v "$t" >/dev/null || { echo "conformance: $t not found: run tests/host-setup.sh (it installs autoconf automake libtool gcc make)" >&2; exit 1; }
done
mkdir -p "$out"
chmod 0755 "$out"
exec 9>"$out/.lock"
flock 9
if up_to_date; then echo "conformance: pjdfstest $commit up to date in $dest (built meanwhile)"; exit 0; fi

start=$(date +%s)
echo "conformance: building pjdfstest $commit from $src..."
scratch=$(mktemp -d "$out/.pjdfstest-build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -a "$src" "$scratch/src"
log=$scratch/build.log
if ! (cd "$scratch/src" && autoreconf -ifs && ./configure && make) >"$log" 2>&1; then
    echo "conformance: building pjdfstest failed; end of the log:" >&2
    tail -n 30 "$log" | sed 's/^/  /' >&2
    exit 1
fi
mkdir "$scratch/install"
cp "$scratch/src/pjdfstest" "$scratch/src/COPYING" "$scratch/install/"
cp -a "$scratch/src/tests" "$scratch/install/tests"
echo "$h" >"$scratch/install/.stamp"
chmod -R a+rX,go-w "$scratch/install"
rm -rf "$dest"
mv "$scratch/install" "$dest"
echo "conformance: built pjdfstest into $dest in $(( $(date +%s) - start ))s"
