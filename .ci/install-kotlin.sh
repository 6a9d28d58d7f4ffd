#!/usr/bin/env bash
# Install the Kotlin/JVM toolchain used to test the UniFFI Kotlin bindings on Linux.
#
#   * Debian packages libjna-java + junit4 (jna.jar with its native libjna-jni, junit4.jar, hamcrest.jar),
#     and a Java runtime/compiler if none is on PATH;
#   * the npm package kotlin-compiler@$KOTLIN_VERSION (the full JetBrains compiler distribution, ~90 MB)
#     into a cache OUTSIDE the repository: $LOYALTY_TOOLCHAINS/kotlin (default /opt/loyalty-toolchains/kotlin).
#
# Idempotent: a second run checks what is there and does nothing (no apt-get update, no npm).
# Concurrent runs are serialised with flock.
#
# Output: progress goes to stderr; stdout is only shell `export` lines, so either
#     eval "$(bash .ci/install-kotlin.sh)"
# or, after any run,
#     . "${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}/kotlin/env.sh"
# gives KOTLINC, KOTLIN_HOME, KOTLIN_LIB, JNA_JAR, JUNIT_JAR, HAMCREST_JAR, KOTLIN_COMPILE_CP (jars needed to
# compile generated bindings + JUnit tests) and KOTLIN_RUN_CP (the same plus kotlin-stdlib and hamcrest, to run
# org.junit.runner.JUnitCore). Fixed paths (defaults):
#     kotlinc:  /opt/loyalty-toolchains/kotlin/node_modules/kotlin-compiler/bin/kotlinc
#     libs:     /opt/loyalty-toolchains/kotlin/node_modules/kotlin-compiler/lib/*.jar
#     jna:      /usr/share/java/jna.jar   junit: /usr/share/java/junit4.jar   hamcrest: /usr/share/java/hamcrest.jar
set -euo pipefail

KOTLIN_VERSION="${KOTLIN_VERSION:-2.4.20}"
TOOLCHAINS="${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}"
KDIR="$TOOLCHAINS/kotlin"
KHOME="$KDIR/node_modules/kotlin-compiler"

log() { printf '[install-kotlin] %s\n' "$*" >&2; }
die() { printf '[install-kotlin] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, $TOOLCHAINS)"
mkdir -p "$TOOLCHAINS"
exec 9>"$TOOLCHAINS/.install-kotlin.lock"
flock 9

export DEBIAN_FRONTEND=noninteractive

# ---- apt packages -------------------------------------------------------------------------------------------
pkg_installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

need=()
for p in libjna-java libjna-jni junit4 libhamcrest-java; do pkg_installed "$p" || need+=("$p"); done
command -v java  >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v npm   >/dev/null 2>&1 || need+=(npm)

apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] && return 0; log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }
if [ "${#need[@]}" -gt 0 ]; then
    # Only refresh the package lists when apt does not know a candidate for a package we need, or when the
    # install fails (stale lists -> 404).
    for p in "${need[@]}"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then apt_update; break; fi
    done
    log "apt-get install ${need[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; then
        [ "$apt_updated" = 1 ] && die "apt-get install ${need[*]} failed"
        apt_update
        apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    fi
else
    log "apt packages already installed"
fi
for f in /usr/share/java/jna.jar /usr/share/java/junit4.jar /usr/share/java/hamcrest.jar; do
    [ -f "$f" ] || die "missing $f after apt install"
done

# ---- kotlin-compiler from npm (into a staging dir, then an atomic rename) ---------------------------------------
kotlin_ok() {
    [ -x "$KHOME/bin/kotlinc" ] && [ -f "$KHOME/lib/kotlin-stdlib.jar" ] &&
        [ -f "$KDIR/.complete" ] && [ "$(cat "$KDIR/.complete")" = "kotlin-compiler@$KOTLIN_VERSION" ]
}
if kotlin_ok; then
    log "kotlin-compiler@$KOTLIN_VERSION already in $KDIR"
else
    log "npm install kotlin-compiler@$KOTLIN_VERSION -> $KDIR"
    stage="$KDIR.partial"
    rm -rf --one-file-system "$stage"
    mkdir -p "$stage"
    ( cd "$stage" &&
      npm install --prefix "$stage" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
          --loglevel=error "kotlin-compiler@$KOTLIN_VERSION" >&2 )
    chmod +x "$stage/node_modules/kotlin-compiler/bin/"* 2>/dev/null || true
    [ -x "$stage/node_modules/kotlin-compiler/bin/kotlinc" ] || die "npm package has no bin/kotlinc"
    echo "kotlin-compiler@$KOTLIN_VERSION" > "$stage/.complete"
    rm -rf --one-file-system "$KDIR.old"
    [ -e "$KDIR" ] && mv "$KDIR" "$KDIR.old"
    mv "$stage" "$KDIR"
    rm -rf --one-file-system "$KDIR.old"
fi

# ---- env file -------------------------------------------------------------------------------------------------
L="$KHOME/lib"
for j in kotlin-stdlib.jar kotlinx-coroutines-core-jvm.jar kotlin-test.jar kotlin-test-junit.jar; do
    [ -f "$L/$j" ] || die "missing $L/$j"
done
env_text="export KOTLIN_HOME='$KHOME'
export KOTLINC='$KHOME/bin/kotlinc'
export KOTLIN_LIB='$L'
export JNA_JAR=/usr/share/java/jna.jar
export JUNIT_JAR=/usr/share/java/junit4.jar
export HAMCREST_JAR=/usr/share/java/hamcrest.jar
export KOTLIN_COMPILE_CP='/usr/share/java/jna.jar:$L/kotlinx-coroutines-core-jvm.jar:/usr/share/java/junit4.jar:$L/kotlin-test.jar:$L/kotlin-test-junit.jar'
export KOTLIN_RUN_CP='$L/kotlin-stdlib.jar:$L/kotlinx-coroutines-core-jvm.jar:/usr/share/java/jna.jar:/usr/share/java/junit4.jar:/usr/share/java/hamcrest.jar:$L/kotlin-test.jar:$L/kotlin-test-junit.jar'"
if [ ! -f "$KDIR/env.sh" ] || [ "$(cat "$KDIR/env.sh")" != "$env_text" ]; then
    printf '%s\n' "$env_text" > "$KDIR/env.sh"
fi
log "kotlinc: $KHOME/bin/kotlinc  (env: . $KDIR/env.sh)"
printf '%s\n' "$env_text"
