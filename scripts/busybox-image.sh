#!/usr/bin/env bash
# A first image without a registry or network: a root filesystem made of the
# host's static busybox (all its applets) and a minimal /etc, imported into
# hutch's store. Runs as your user; needs no root.
#
#   scripts/busybox-image.sh [NAME]     NAME defaults to busybox
#                                       (stored as localhost/busybox:latest)
#
# Needs: busybox-static (Debian/Ubuntu: sudo apt install busybox-static).
# HUTCH names the hutch binary (default: hutch in PATH, else
# ~/.local/bin/hutch); BUSYBOX another static busybox (default /bin/busybox).
set -euo pipefail

die() { printf 'busybox-image.sh: error: %s\n' "$*" >&2; exit 1; }

name=${1:-busybox}
busybox=${BUSYBOX:-/bin/busybox}
hutch=${HUTCH:-}
if [ -z "$hutch" ]; then
    if command -v hutch >/dev/null 2>&1; then
        hutch=hutch
    elif [ -x "$HOME/.local/bin/hutch" ]; then
        hutch=$HOME/.local/bin/hutch
    else
        die "hutch not found in PATH or ~/.local/bin: run ./install.sh first (or set HUTCH=/path/to/hutch)"
    fi
fi

[ -x "$busybox" ] && "$busybox" --list-full >/dev/null 2>&1 ||
    die "no busybox at $busybox: sudo apt install busybox-static (or set BUSYBOX=/path/to/busybox)"
# A dynamically linked busybox (Debian's busybox package) would need the
# host's libraries inside the image.
# grep reads everything (no -q): under pipefail an early exit could
# SIGPIPE ldd and hide the match.
if ldd "$busybox" 2>/dev/null | grep '=>' >/dev/null; then
    die "$busybox is dynamically linked: sudo apt install busybox-static (it replaces the busybox package)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/busybox-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
r=$work/rootfs
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,proc,sys,dev}
chmod 0755 "$r" "$r"/{bin,sbin,usr,usr/bin,usr/sbin,etc,home,var,proc,sys,dev}
chmod 0700 "$r/root"
chmod 1777 "$r/tmp" "$r/var/tmp"
cp "$busybox" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"
# Every applet, where this busybox would install it (bin/ls, sbin/httpd...).
while IFS= read -r applet; do
    [ -n "$applet" ] && [ ! -e "$r/$applet" ] && [ ! -L "$r/$applet" ] || continue
    ln -s /bin/busybox "$r/$applet"
done < <("$busybox" --list-full)

printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"
printf '%s\n' 'NAME="busybox (hutch first image)"' 'ID=busybox' >"$r/etc/os-release"
chmod 0644 "$r"/etc/{passwd,group,os-release}

tar --numeric-owner --owner=0 --group=0 --sort=name -C "$r" -cf "$work/rootfs.tar" .
"$hutch" import "$work/rootfs.tar" "$name"
printf 'imported %s; try: hutch run --rm %s sh -c '\''echo hello from $(hostname)'\''\n' "$name" "$name" >&2
