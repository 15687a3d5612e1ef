# bench/lib.sh — sourced by the bench scripts.

# as_test_user SCRIPT ARGS...: benchmarks measure hutch as a normal user.
# Run as root, this builds a release hutch (or takes $HUTCH_BIN), copies it
# with the script and this file to a throwaway directory, runs the script
# there as hutch-test (the user tests/host-setup.sh creates) with a login's
# environment, and exits with its status. As a normal user it returns at
# once. TMPDIR, when set, is passed on.
as_test_user() {
  [ "$(id -u)" = 0 ] || return 0
  local script=$1; shift
  local here repo bin uid rc=0
  here=$(cd "$(dirname "$script")" && pwd)
  repo=$(dirname "$here")
  bin=$(mktemp -d /var/tmp/hutch-bench.XXXXXX)
  if [ -z "${HUTCH_BIN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet)
    cp "$repo/target/release/hutch" "$bin/hutch"
  else
    cp "$HUTCH_BIN" "$bin/hutch"
  fi
  cp "$script" "$here/lib.sh" "$bin/"
  chmod -R a+rx "$bin"
  # Rootless podman wants a runtime dir it owns.
  uid=$(id -u hutch-test)
  if [ ! -d /run/user/"$uid" ]; then
    mkdir -p /run/user/"$uid" && chown hutch-test: /run/user/"$uid" && chmod 700 /run/user/"$uid"
  fi
  runuser -u hutch-test -- env HUTCH_BIN="$bin/hutch" \
    HUTCH_FIXTURES="${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}" HOME=/home/hutch-test \
    XDG_RUNTIME_DIR=/run/user/"$uid" PATH=/usr/local/bin:/usr/bin:/bin \
    ${TMPDIR:+TMPDIR="$TMPDIR"} bash "$bin/$(basename "$script")" "$@" || rc=$?
  rm -rf "$bin"
  exit "$rc"
}
