#!/usr/bin/env bash
# Prepare this host for hutch's tests the way a normal desktop distribution
# is set up: the packages the tests use, /dev/fuse and /dev/net/tun usable by
# everyone, an unprivileged user with subordinate id ranges and working
# newuidmap/newgidmap, unprivileged user namespaces allowed.
#
# Run as root. Idempotent and quick when there is nothing to do; prints each
# change it makes.
#
#   tests/host-setup.sh
#
# Environment: HUTCH_TEST_USER (default hutch-test).
set -euo pipefail

user=${HUTCH_TEST_USER:-hutch-test}
for a in "$@"; do
    case $a in
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "host-setup.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "host-setup.sh: run as root (sudo tests/host-setup.sh)" >&2; exit 1; }

changes=()
changed() { changes+=("$*"); echo "host-setup: $*"; }
warn() { echo "host-setup: WARNING: $*" >&2; }

# ------------------------------------------------------------------ packages
# Fixtures: busybox-static debootstrap skopeo zstd python3 jq (+ tar gzip).
# Tests: uidmap (newuidmap), podman/crun/fuse-overlayfs/umoci/skopeo (the
# tools hutch must interoperate with), docker-registry (local registry),
# attr (getfattr), slirp4netns/passt/iperf3 (networking), apache2-utils
# (htpasswd) and openssl (the token service) for registry auth, bubblewrap,
# hyperfine and distrobox (what bench/ compares with), binutils (readelf:
# install.sh's stripped binary), dpkg-dev (dpkg-scanpackages: the fixtures' apt
# repository), autoconf automake libtool gcc make perl (pjdfstest's build and
# its `prove`: tests/conformance/).
pkgs=(busybox-static debootstrap debian-archive-keyring skopeo podman crun umoci
      uidmap fuse-overlayfs docker-registry zstd jq attr python3 tar gzip
      util-linux procps iproute2 slirp4netns passt iperf3 bubblewrap hyperfine runc
      apache2-utils openssl binutils dpkg-dev distrobox
      autoconf automake libtool gcc make perl)
missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "host-setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o Dpkg::Use-Pty=0 -o Acquire::Retries=3)
    apt-get "${apt_opts[@]}" update -qq
    # Do not start services (docker-registry) from package scripts.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 0755 "$policy"; own_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    rc=0
    apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    if [ "$own_policy" = 1 ]; then rm -f "$policy"; trap - EXIT; fi
    [ "$rc" = 0 ] || { echo "host-setup: apt-get install failed (exit $rc)" >&2; exit 1; }
    changed "installed packages: ${missing[*]}"
fi

# ------------------------------------------------------------------ devices
if [ ! -e /dev/net/tun ]; then
    mkdir -p /dev/net
    mknod -m 0666 /dev/net/tun c 10 200
    changed "created /dev/net/tun"
fi
for d in /dev/fuse /dev/net/tun; do
    if [ ! -c "$d" ]; then
        warn "$d is missing or not a character device (is the kernel module loaded?)"
        continue
    fi
    if [ "$(stat -c %a "$d")" != 666 ]; then
        chmod 0666 "$d"
        changed "chmod 0666 $d"
    fi
done

# ------------------------------------------------------------------ sysctls
sysctl_get() { cat "/proc/sys/${1//.//}" 2>/dev/null || true; }
sysctl_set() {
    local key=$1 want=$2 cur
    cur=$(sysctl_get "$key")
    [ -z "$cur" ] && return 0          # the kernel does not have it
    [ "$cur" = "$want" ] && return 0
    if echo "$want" >"/proc/sys/${key//.//}" 2>/dev/null; then
        changed "sysctl $key: $cur -> $want"
    else
        warn "could not set sysctl $key=$want (it is $cur)"
    fi
}
max_userns=$(sysctl_get user.max_user_namespaces)
if [ -n "$max_userns" ] && [ "$max_userns" -gt 0 ]; then
    sysctl_set kernel.apparmor_restrict_unprivileged_userns 0   # Ubuntu 23.10+
    sysctl_set kernel.unprivileged_userns_clone 1               # older Debian kernels
else
    warn "user namespaces are disabled (user.max_user_namespaces=${max_userns:-?}); hutch cannot run here"
fi

# ------------------------------------------------------------------ user
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --create-home --home-dir "/home/$user" --shell /bin/bash --comment "hutch tests" "$user"
    changed "created user $user"
    for f in /etc/subuid /etc/subgid; do
        if grep -q "^$user:" "$f" 2>/dev/null; then
            changed "useradd allotted $(grep "^$user:" "$f" | head -n1) in $f"
        fi
    done
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
if [ ! -d "$home" ]; then
    mkdir -p "$home"; chown "$uid:$gid" "$home"; chmod 0755 "$home"
    changed "created $home"
fi

# Subordinate ids: 65536 of them, after every range already allotted.
has_range() { # FILE: does the user have a range of >= 65536 ids?
    awk -F: -v u="$user" -v id="$uid" '($1==u || $1==id) && $3 >= 65536 { found=1 } END { exit !found }' "$1" 2>/dev/null
}
next_start() {
    cat /etc/subuid /etc/subgid 2>/dev/null |
        awk -F: 'NF>=3 { e = $2 + $3; if (e > m) m = e } END { s = (m > 100000 ? m : 100000); print s }'
}
for f in /etc/subuid /etc/subgid; do
    [ -e "$f" ] || { touch "$f"; chmod 0644 "$f"; }
    if ! has_range "$f"; then
        start=$(next_start)
        echo "$user:$start:65536" >>"$f"
        changed "added $user:$start:65536 to $f"
    fi
done

# newuidmap/newgidmap must be setuid root or carry file capabilities.
for t in newuidmap newgidmap; do
    p=$(command -v "$t" || true)
    if [ -z "$p" ]; then
        echo "host-setup: $t not found even though uidmap is installed" >&2; exit 1
    fi
    if [ ! -u "$p" ] && ! getcap "$p" 2>/dev/null | grep cap_set >/dev/null; then
        chmod u+s "$p"
        changed "chmod u+s $p (it had neither setuid nor file capabilities)"
    fi
done

# XDG_RUNTIME_DIR as logind would make it (gone after a reboot: recreate).
rt=/run/user/$uid
if [ ! -d "$rt" ]; then
    mkdir -p "$rt"; chown "$uid:$gid" "$rt"; chmod 0700 "$rt"
    changed "created $rt"
fi

# Functional check: can the user map its subordinate ids?
if command -v unshare >/dev/null && unshare --help 2>&1 | grep -- --map-auto >/dev/null; then
    if ! out=$(runuser -u "$user" -- unshare --user --map-auto --map-root-user cat /proc/self/uid_map 2>&1); then
        warn "$user cannot create a user namespace with its subordinate ids: $out"
    elif [ "$(awk '{ n += $3 } END { print n + 0 }' <<<"$out")" -lt 65536 ]; then
        warn "$user's user namespace did not get its 65536 subordinate ids: $out"
    fi
fi

if [ ${#changes[@]} -eq 0 ]; then
    echo "host-setup: nothing to change"
else
    echo "host-setup: ${#changes[@]} change(s) made"
fi
