#!/usr/bin/env bash
# Install Swift (Debian trixie's swiftlang, Swift 6.0.x) for testing the UniFFI Swift bindings on Linux.
#
# Bookworm has no Swift and trixie's swiftlang needs glibc 2.38, so Swift lives in a Debian trixie chroot made with
# debootstrap (minbase) at $LOYALTY_TOOLCHAINS/swift-trixie (default /opt/loyalty-toolchains/swift-trixie), with
# `swiftlang libc6-dev` installed inside. Run commands in it with .ci/swift-chroot.sh.
#
# Idempotent: when the chroot is complete (marker ROOT/.loyalty-swift-ready) a run does nothing. Stages:
#   1. debootstrap into ROOT.partial inside a private mount namespace (so mounts it makes can never leak),
#      then rename to ROOT with marker ROOT/.loyalty-debootstrap-done;
#   2. apt-get install swiftlang libc6-dev inside (re-runnable), `swift --version`, then the ready marker.
# An interrupted stage 1 (ROOT.partial, or ROOT without its debootstrap marker) is unmounted and deleted with
# `rm -rf --one-file-system` and rebuilt; an interrupted stage 2 is simply resumed.
# Needs root. ~530 MB download, ~2.6 GB on disk. Prints the chroot path on stdout.
set -euo pipefail

SUITE="${LOYALTY_SWIFT_SUITE:-trixie}"
MIRROR="${LOYALTY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="swiftlang libc6-dev"
TOOLCHAINS="${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}"
ROOT="${LOYALTY_SWIFT_ROOT:-$TOOLCHAINS/swift-trixie}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHROOT_SH="$HERE/swift-chroot.sh"

log() { printf '[install-swift] %s\n' "$*" >&2; }
die() { printf '[install-swift] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount, chroot)"
[ -f "$CHROOT_SH" ] || die "missing $CHROOT_SH"
mkdir -p "$(dirname "$ROOT")"
ROOT="$(realpath -m "$ROOT")"
[[ "$ROOT" =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "unsupported chroot path '$ROOT'"
case "$ROOT" in /|/opt|/tmp|/var|/usr|/srv|/home|/root) die "refusing chroot path '$ROOT'";; esac
READY="$ROOT/.loyalty-swift-ready"
BOOTED="$ROOT/.loyalty-debootstrap-done"
want_marker="$SUITE: $PACKAGES"

exec 9>"$ROOT.install.lock"
flock 9

if [ -f "$READY" ] && [ "$(cat "$READY")" = "$want_marker" ] && { [ -L "$ROOT/usr/bin/swift" ] || [ -e "$ROOT/usr/bin/swift" ]; }; then
    log "swift chroot already complete: $ROOT"
    echo "$ROOT"
    exit 0
fi

# ---- helpers -------------------------------------------------------------------------------------------------------
mounts_under() {  # mount points at or below $1 in this mount namespace
    awk -v r="$1" '{ t = $5; gsub(/\\040/, " ", t); if (t == r || index(t, r "/") == 1) print t }' /proc/self/mountinfo
}
safe_remove() {   # unmount everything below $1, verify, then delete without crossing file systems
    local d="$1"
    [ -e "$d" ] || [ -L "$d" ] || return 0
    [ -L "$d" ] && { rm -f "$d"; return 0; }
    case "$d" in "$(dirname "$ROOT")"/*) ;; *) die "refusing to delete $d (outside $(dirname "$ROOT"))";; esac
    if [ -n "$(mounts_under "$d")" ]; then
        log "unmounting leftovers under $d"
        "$CHROOT_SH" --root "$d" --cleanup 2>/dev/null || true
        mounts_under "$d" | sort -r | while IFS= read -r m; do umount -R "$m" 2>/dev/null || umount -R -l "$m" || true; done
    fi
    if [ -n "$(mounts_under "$d")" ]; then
        mounts_under "$d" >&2
        die "still mounted under $d; NOT deleting it (unmount by hand, then rm -rf --one-file-system $d)"
    fi
    log "deleting $d"
    rm -rf --one-file-system "$d"
}
apt_updated=0
host_apt_install() {
    local need=() p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || need+=("$p")
    done
    [ "${#need[@]}" -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    for p in "${need[@]}"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
            log "apt-get update"; apt-get update -qq >&2; apt_updated=1; break
        fi
    done
    log "apt-get install ${need[*]} (host)"
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; then
        [ "$apt_updated" = 1 ] && die "apt-get install ${need[*]} failed"
        log "apt-get update"; apt-get update -qq >&2; apt_updated=1
        apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    fi
}

# ---- stage 1: debootstrap ---------------------------------------------------------------------------------------
if [ -e "$ROOT" ] && [ ! -f "$BOOTED" ]; then
    log "found a half-built chroot at $ROOT (no debootstrap marker): rebuilding it"
    safe_remove "$ROOT"
fi
if [ ! -e "$ROOT" ]; then
    host_apt_install debootstrap
    # trixie's debootstrap script may be missing from an old debootstrap package: bookworm's has it (symlink to sid)
    [ -e "/usr/share/debootstrap/scripts/$SUITE" ] || die "debootstrap does not know suite $SUITE"
    safe_remove "$ROOT.partial"
    log "debootstrap --variant=minbase $SUITE $ROOT.partial $MIRROR"
    t0=$(date +%s)
    # own mount namespace: whatever debootstrap mounts (proc, sys, dev binds) disappears with it, even on a kill
    unshare --mount --propagation private \
        debootstrap --variant=minbase "$SUITE" "$ROOT.partial" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 ||
        { tail -n 30 "$ROOT.debootstrap.log" >&2; die "debootstrap failed (log: $ROOT.debootstrap.log)"; }
    log "debootstrap done in $(( $(date +%s) - t0 ))s"
    [ -z "$(mounts_under "$ROOT.partial")" ] || die "mounts left under $ROOT.partial after debootstrap"
    date -u +%FT%TZ > "$ROOT.partial/.loyalty-debootstrap-done"
    mv "$ROOT.partial" "$ROOT"
fi

# ---- stage 2: swiftlang inside ---------------------------------------------------------------------------------
log "installing $PACKAGES inside $ROOT"
# mounts left in the host namespace by a killed fallback-mode swift-chroot.sh run would make it refuse
"$CHROOT_SH" --root "$ROOT" --cleanup || die "could not clean up mounts under $ROOT"
t0=$(date +%s)
install -m 0644 /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
rm -f "$READY"
"$CHROOT_SH" --root "$ROOT" --allow-incomplete --env DEBIAN_FRONTEND=noninteractive - /bin/sh -ec "
    dpkg --configure -a
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $PACKAGES
    apt-get clean
    rm -rf /var/lib/apt/lists/*
    swift --version
" >&2 || die "installing $PACKAGES in the chroot failed (re-run this script to resume)"
{ [ -L "$ROOT/usr/bin/swift" ] || [ -e "$ROOT/usr/bin/swift" ]; } || die "no /usr/bin/swift in $ROOT after install"
echo "$want_marker" > "$READY"
log "swift chroot ready in $(( $(date +%s) - t0 ))s: $ROOT ($(du -sh --one-file-system "$ROOT" 2>/dev/null | cut -f1))"
echo "$ROOT"
