#!/usr/bin/env bash
# Install what the console's browser test (tests/console/run.mjs) runs with: Debian's chromium,
# node (Debian's, when none is on PATH), and the npm packages pinned by
# tests/console/package-lock.json, into a cache OUTSIDE the repository:
# $LOYALTY_TOOLCHAINS/console (default /opt/loyalty-toolchains/console).
#
# Idempotent: when the cached lock file equals the repository's, it does nothing (no npm).
# Output: progress on stderr; stdout is only `export` lines, so `eval "$(bash .ci/install-console.sh)"`.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAINS="${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}"
DIR="$TOOLCHAINS/console"
log() { printf '[install-console] %s\n' "$*" >&2; }

missing=()
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if cmp -s tests/console/package-lock.json "$DIR/package-lock.json" \
  && [ -f "$DIR/node_modules/playwright-core/package.json" ]; then
  log "cached in $DIR"
else
  log "npm ci into $DIR"
  cp tests/console/package.json tests/console/package-lock.json "$DIR/"
  # playwright-core downloads no browser (Debian's chromium is used); --ignore-scripts makes sure.
  (cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
echo "export LOYALTY_CONSOLE_MODULES=$DIR/node_modules"
