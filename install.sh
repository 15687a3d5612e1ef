#!/usr/bin/env bash
# Build hutch and install it for the current user, without root.
#
#   ./install.sh                 installs to ~/.local/bin/hutch
#   PREFIX=/opt/me ./install.sh  installs to /opt/me/bin/hutch
#
# Then runs `hutch check` to report what this host still lacks (subordinate
# ids, /dev/fuse, user namespaces...). Problems it reports do not fail the
# installation: hutch is installed, and check tells you what to fix.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

[ -f Cargo.toml ] || die "run me from a hutch source tree (no Cargo.toml in $here)"
if [ -z "${HOME:-}" ]; then
    HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
    export HOME
fi
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH=$HOME/.cargo/bin:$PATH
    else
        die "cargo not found: install Rust first (https://rustup.rs), then run ./install.sh again"
    fi
fi

prefix=${PREFIX:-$HOME/.local}
bindir=$prefix/bin
dest=$bindir/hutch

say "building hutch (cargo build --release --locked)..."
cargo build --release --locked
# Where cargo put it (CARGO_TARGET_DIR or build.target-dir may move it).
target_dir=$(cargo metadata --format-version 1 --no-deps --locked 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
built=${target_dir:-$here/target}/release/hutch
[ -x "$built" ] || die "build finished but $built is missing"

mkdir -p "$bindir" || die "cannot create $bindir (set PREFIX to a directory you can write)"
[ -w "$bindir" ] || die "$bindir is not writable (set PREFIX to a directory you can write)"
# Copy next to the destination and rename: a running hutch keeps its inode.
tmp=$(mktemp "$bindir/.hutch.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp "$built" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
say "installed $dest ($("$dest" --version 2>/dev/null || echo 'version unknown'))"

case ":$PATH:" in
    *":$bindir:"*) ;;
    *)
        say "WARNING: $bindir is not on your PATH. Add it, e.g. in ~/.profile:"
        printf '    export PATH="%s:$PATH"\n' "$bindir"
        ;;
esac

if [ "$(id -u)" = 0 ]; then
    say "note: installed for root; hutch is meant to be run by an ordinary user"
fi

say "checking this host (hutch check)..."
if "$dest" check; then
    say "done: hutch is ready"
else
    rc=$?
    say "hutch check reported problems (exit $rc): see above. hutch is installed;"
    say "fix what check lists, then run \`hutch check\` again."
fi
