#!/usr/bin/env bash
# Install what the JavaScript protocol client (scripts/js-client) runs with: node (Debian's, when
# none is on PATH) and the npm packages pinned by scripts/js-client/package-lock.json, into a cache
# OUTSIDE the repository: $LOYALTY_TOOLCHAINS/js (default /opt/loyalty-toolchains/js).
#
# Idempotent: when the cached lock file equals the repository's, it does nothing (no npm).
# Output: progress on stderr; stdout is only `export` lines, so `eval "$(bash .ci/install-js.sh)"`.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAINS="${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}"
JS_DIR="$TOOLCHAINS/js"
log() { printf '[install-js] %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs and npm from Debian"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

mkdir -p "$JS_DIR"
exec 9>"$JS_DIR/.lock"
flock 9
if cmp -s scripts/js-client/package-lock.json "$JS_DIR/package-lock.json" \
  && [ -f "$JS_DIR/node_modules/@automerge/automerge/package.json" ]; then
  log "cached in $JS_DIR"
else
  log "npm ci into $JS_DIR"
  cp scripts/js-client/package.json scripts/js-client/package-lock.json "$JS_DIR/"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo "export LOYALTY_JS_MODULES=$JS_DIR/node_modules"
