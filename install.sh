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
# The oldest Rust that builds hutch: Cargo.toml's rust-version.
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
need=${need:-1.91}
rustup_hint="install a current toolchain with rustup, as your user:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . \"\$HOME/.cargo/env\"
(or \`apt install rustup && rustup default stable\` where your distribution has the rustup package), then run ./install.sh again"

# "cargo 1.63.0 (fd9c4297c 2022-07-01)" -> 1.63.0; empty when no cargo.
cargo_version() { "$1" --version 2>/dev/null | sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p'; }
# Whether version $1 >= version $2 (numeric, field by field).
version_ge() {
    local IFS=.
    local -a a=($1) b=($2)
    local i
    for i in 0 1 2; do
        [ "${a[i]:-0}" -gt "${b[i]:-0}" ] && return 0
        [ "${a[i]:-0}" -lt "${b[i]:-0}" ] && return 1
    done
    return 0
}

# The first cargo that is new enough: PATH's, else rustup's in ~/.cargo/bin
# (Debian's own cargo often comes first in PATH and is too old).
found=""
for c in "$(command -v cargo 2>/dev/null || true)" "$HOME/.cargo/bin/cargo"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    v=$(cargo_version "$c")
    if [ -n "$v" ] && version_ge "$v" "$need"; then
        found=$c
        break
    fi
    [ -n "$v" ] && old="$c is Rust $v"
done
if [ -z "$found" ]; then
    if [ -n "${old:-}" ]; then
        die "hutch needs Rust >= $need to build, and $old (Debian 12's own cargo is 1.63);
$rustup_hint"
    fi
    die "cargo not found: hutch needs Rust >= $need;
$rustup_hint"
fi
PATH=$(dirname "$found"):$PATH
say "using $found ($(cargo_version "$found"))"

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
# The release build keeps line tables for backtraces and profiling; the
# installed binary does not need them (a third of the size).
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$tmp" || die "stripping the debug information from $tmp failed"
else
    say "note: strip not found (binutils), so the installed binary keeps its debug information"
fi
chmod 0755 "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
say "installed $dest ($("$dest" --version 2>/dev/null || echo 'version unknown'))"

case ":$PATH:" in
    *":$bindir:"*) ;;
    *)
        say "WARNING: $bindir is not on your PATH yet. Debian's and Ubuntu's ~/.profile"
        say "add ~/.local/bin at your next login; for this shell (or in ~/.profile"
        say "for another PREFIX):"
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
