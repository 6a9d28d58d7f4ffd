#!/usr/bin/env bash
# Run a command inside the Debian trixie Swift chroot made by .ci/install-swift.sh.
#
#   .ci/swift-chroot.sh [options] HOSTDIR [--] CMD [ARGS...]
#
# HOSTDIR (an existing host directory) is bind-mounted at the SAME path inside the chroot and CMD runs there
# (cwd = HOSTDIR), as root, with a clean environment (HOME=/root, PATH, LANG=C.UTF-8). Pass "-" as HOSTDIR to
# bind nothing and run in /.
#
# Options:
#   --root DIR           chroot directory (default $LOYALTY_SWIFT_ROOT, else
#                        ${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}/swift-trixie)
#   --env NAME=VALUE     add a variable to CMD's environment (repeatable)
#   --bind DIR           also bind-mount host directory DIR at the same path (repeatable), e.g. a
#                        CARGO_TARGET_DIR that is not below HOSTDIR
#   --allow-incomplete   do not require the "install complete" marker (used by install-swift.sh itself)
#   --cleanup            only unmount whatever is mounted under the chroot in this (host) mount namespace
#
# Mounts on entry: proc at ROOT/proc, an rbind of /dev at ROOT/dev made rslave, and the HOSTDIR bind. They are
# ALWAYS unmounted on exit (EXIT/INT/TERM/HUP trap), and checked before the command runs: if anything looks
# wrong (stale mounts under ROOT, symlinked mount points, wrong fs type, shared propagation) it refuses to run.
# Where `unshare` works (it does for root here) everything runs in a private mount namespace, so the host never
# sees these mounts at all and, even after a SIGKILL, they vanish with the namespace; processes the command
# leaves behind are killed when it ends (only members of that private namespace, never anything else).
#
# NEVER delete the chroot while something is mounted in it: a recursive delete through the /dev rbind wipes the
# host's device nodes. Unmount first (this script, or --cleanup), then `rm -rf --one-file-system ROOT`.
set -euo pipefail

PROG="swift-chroot"
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

ROOT="${LOYALTY_SWIFT_ROOT:-${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}/swift-trixie}"
ALLOW_INCOMPLETE=0
CLEANUP_ONLY=0
EXTRA_ENV=()
EXTRA_BINDS=()
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        --env) [ $# -ge 2 ] || usage; EXTRA_ENV+=("$2"); shift 2 ;;
        --env=*) EXTRA_ENV+=("${1#--env=}"); shift ;;
        --bind) [ $# -ge 2 ] || usage; EXTRA_BINDS+=("$2"); shift 2 ;;
        --bind=*) EXTRA_BINDS+=("${1#--bind=}"); shift ;;
        --allow-incomplete) ALLOW_INCOMPLETE=1; shift ;;
        --cleanup) CLEANUP_ONLY=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -) break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root (mount, chroot)"
for e in "${EXTRA_ENV[@]}"; do [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "bad --env '$e' (want NAME=VALUE)"; done

# ---- the chroot directory must be a sane, canonical path --------------------------------------------------------
[ -d "$ROOT" ] || die "chroot $ROOT does not exist: run .ci/install-swift.sh"
[ -L "$ROOT" ] && die "chroot $ROOT is a symlink; give the real path"
ROOT="$(realpath -e "$ROOT")"
[[ "$ROOT" =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "chroot path '$ROOT' has unsupported characters"
case "$ROOT" in /|/bin|/boot|/dev|/etc|/home|/lib*|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/var) die "refusing chroot root '$ROOT'";; esac
[ -f "$ROOT/etc/debian_version" ] && [ -x "$ROOT/bin/sh" ] || die "$ROOT does not look like a Debian root"

# Mount points (in this mount namespace) at or below $ROOT, deepest first.
mounts_under_root() {
    awk -v r="$ROOT" '{ t = $5; gsub(/\\040/, " ", t); if (t == r || index(t, r "/") == 1) print t }' \
        /proc/self/mountinfo | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | uniq
}

unmount_all_under_root() {
    local t rc=0
    # umount -R on each top-most remaining mount, retry lazily if busy; loop because of stacked mounts
    for _ in 1 2 3 4 5; do
        local left
        left="$(mounts_under_root)"
        [ -z "$left" ] && return 0
        while IFS= read -r t; do
            [ -n "$t" ] || continue
            umount -R "$t" 2>/dev/null || umount -R -l "$t" 2>/dev/null || umount -l "$t" 2>/dev/null || true
        done <<< "$left"
    done
    if [ -n "$(mounts_under_root)" ]; then
        log "STILL MOUNTED under $ROOT:"; mounts_under_root >&2; rc=1
    fi
    return $rc
}

if [ "$CLEANUP_ONLY" = 1 ]; then
    # a host-namespace (fallback mode) run holds this lock while its mounts are in use: never yank them
    exec 8>"$ROOT.lock"
    flock -n 8 || die "a swift-chroot run is using $ROOT right now; not unmounting"
    if [ -z "$(mounts_under_root)" ]; then log "nothing mounted under $ROOT"; exit 0; fi
    unmount_all_under_root || die "could not unmount everything under $ROOT"
    log "unmounted everything under $ROOT"
    exit 0
fi

[ $# -ge 2 ] || usage
HOSTDIR="$1"; shift
[ "${1:-}" = "--" ] && shift
[ $# -ge 1 ] || usage

if [ "$ALLOW_INCOMPLETE" = 0 ]; then
    [ -f "$ROOT/.loyalty-swift-ready" ] || die "chroot $ROOT is not complete: run .ci/install-swift.sh"
fi

# ---- the host directories to bind ---------------------------------------------------------------------------------
check_hostdir() {   # prints the canonical path of a host directory that is safe to bind, or dies
    local d="$1"
    [ -d "$d" ] || die "host directory '$d' does not exist"
    d="$(realpath -e "$d")"
    [[ "$d" =~ ^/[A-Za-z0-9._/+@-]+$ ]] || die "host dir '$d' has unsupported characters"
    case "$d" in
        /|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/bin|/sbin|/lib|/lib64|/usr|/etc|/boot|/run|/tmp|/opt|/var|/root|/home)
            die "refusing to bind host directory '$d'" ;;
    esac
    case "$ROOT/" in "$d"/*) die "host dir '$d' contains the chroot $ROOT";; esac
    case "$d/" in "$ROOT"/*) die "host dir '$d' is inside the chroot";; esac
    printf '%s\n' "$d"
}
BINDS=()
if [ "$HOSTDIR" = "-" ]; then
    CWD="/"
else
    HOSTDIR="$(check_hostdir "$HOSTDIR")"
    BINDS+=("$HOSTDIR")
    CWD="$HOSTDIR"
fi
for b in "${EXTRA_BINDS[@]}"; do BINDS+=("$(check_hostdir "$b")"); done
# bind parents before children so a nested extra bind is not hidden by its parent's bind
mapfile -t BINDS < <(printf '%s\n' "${BINDS[@]}" | awk 'NF' | awk '{ print length($0) "\t" $0 }' | sort -n | cut -f2- | uniq)

# ---- stale mounts from an earlier crash (fallback mode) -> refuse -------------------------------------------------
if [ -z "${_LOYALTY_SWIFT_NS:-}" ] && [ -n "$(mounts_under_root)" ]; then
    log "something is already mounted under $ROOT in the host namespace:"; mounts_under_root >&2
    die "refusing to proceed; run: $0 --root $ROOT --cleanup"
fi

# ---- re-exec inside a private mount namespace when possible ------------------------------------------------------
# (no --fork/PID namespace: `unshare --fork` ignores SIGINT/SIGTERM, so a kill of this script would not stop the
# command; without --fork unshare execs us in place and our traps get the signals directly)
if [ -z "${_LOYALTY_SWIFT_NS:-}" ] && [ "${LOYALTY_SWIFT_NO_UNSHARE:-0}" != 1 ] &&
   unshare --mount --propagation private true 2>/dev/null; then
    exec unshare --mount --propagation private env _LOYALTY_SWIFT_NS=1 bash "$0" "${ORIG_ARGS[@]}"
fi
# true only when this process really is in a mount namespace of its own (never the host's / PID 1's)
own_mount_ns() { [ -n "${_LOYALTY_SWIFT_NS:-}" ] && ! [ /proc/self/ns/mnt -ef /proc/1/ns/mnt ]; }

# Without namespaces, mounts are in the host namespace: serialise users of this chroot.
if [ -z "${_LOYALTY_SWIFT_NS:-}" ]; then
    log "no private mount namespace (unshare failed or LOYALTY_SWIFT_NO_UNSHARE=1): mounting in the host namespace, serialised"
    exec 8>"$ROOT.lock"
    flock 8
    [ -z "$(mounts_under_root)" ] || die "mounts appeared under $ROOT; run $0 --cleanup"
fi

# ---- mount, with an always-run cleanup --------------------------------------------------------------------------
CHILD=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM -- "-$CHILD" "$CHILD" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$CHILD" "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    # Stray processes of this run (e.g. a daemon the command left behind) would keep the mounts busy. In our own
    # mount namespace every other member is ours: kill them. Never done when sharing the host's namespace.
    if own_mount_ns; then
        local q pid
        for q in /proc/[0-9]*; do
            pid="${q#/proc/}"
            [ "$pid" = "$$" ] && continue
            [ "$q/ns/mnt" -ef /proc/self/ns/mnt ] 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        done
        sleep 0.1
    fi
    if ! unmount_all_under_root; then
        log "ERROR: mounts left under $ROOT; do NOT delete it; run $0 --cleanup"
        [ "$rc" = 0 ] && rc=70
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "signal received, stopping"; exit 130' INT
trap 'log "signal received, stopping"; exit 143' TERM
trap 'log "signal received, stopping"; exit 129' HUP

# a mount point inside ROOT must be a real directory whose canonical path is exactly itself (no symlink escape)
safe_mountpoint() {
    local p="$1"
    [ "$(realpath -m "$p")" = "$p" ] || die "mount point $p resolves elsewhere ($(realpath -m "$p")); refusing"
    mkdir -p "$p"
    [ -d "$p" ] && [ ! -L "$p" ] || die "mount point $p is not a plain directory"
    [ "$(realpath -e "$p")" = "$p" ] || die "mount point $p resolves elsewhere; refusing"
}

safe_mountpoint "$ROOT/proc"
safe_mountpoint "$ROOT/dev"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
for b in "${BINDS[@]}"; do
    safe_mountpoint "$ROOT$b"
    mount --bind "$b" "$ROOT$b"
    mount --make-private "$ROOT$b"
done

# ---- verify the mounts before running anything ----------------------------------------------------------------
fm() { findmnt -n -o "$1" --mountpoint "$2" 2>/dev/null | tail -n1; }
[ "$(fm FSTYPE "$ROOT/proc")" = proc ] || die "$ROOT/proc is not a proc mount"
[ "$(fm FSTYPE "$ROOT/dev")" = "$(fm FSTYPE /dev)" ] || die "$ROOT/dev is not the host /dev"
case "$(fm PROPAGATION "$ROOT/dev")" in *shared*|"") die "$ROOT/dev propagation is '$(fm PROPAGATION "$ROOT/dev")', want slave/private";; esac
[ -c "$ROOT/dev/null" ] || die "$ROOT/dev/null is not a character device"
for b in "${BINDS[@]}"; do
    [ -n "$(fm TARGET "$ROOT$b")" ] || die "$ROOT$b is not mounted"
    [ "$(stat -c %d:%i "$b")" = "$(stat -c %d:%i "$ROOT$b")" ] || die "$ROOT$b is not the host's $b"
done

# ---- run ----------------------------------------------------------------------------------------------------------
# own session/process group (so the cleanup can signal all of it), stdin kept (a background job would get
# /dev/null), lock fds closed (a stray process must not hold them)
ENV_IN=(HOME=/root LANG=C.UTF-8 "TERM=${TERM:-dumb}" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
[ -n "${CI:-}" ] && ENV_IN+=("CI=$CI")
ENV_IN+=("${EXTRA_ENV[@]}")
setsid -w chroot "$ROOT" /usr/bin/env -i "${ENV_IN[@]}" \
    /bin/sh -c 'cd "$1" || exit 97; shift; exec "$@"' sh "$CWD" "$@" <&0 8>&- 9>&- &
CHILD=$!
set +e
while :; do
    wait "$CHILD"; status=$?
    kill -0 "$CHILD" 2>/dev/null || break
done
set -e
CHILD=""
exit "$status"
