#!/usr/bin/env bash
# Install schemathesis (PyPI), which checks the server against its OpenAPI document
# (scripts/schemathesis.sh), into a virtualenv OUTSIDE the repository:
# $LOYALTY_TOOLCHAINS/schemathesis (default /opt/loyalty-toolchains/schemathesis).
#
# Idempotent: when the venv already has the pinned version, it does nothing (no pip).
# Output: progress on stderr; stdout is only the path of the `st` program.
set -euo pipefail

VERSION=4.32.5
TOOLCHAINS="${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}"
VENV="$TOOLCHAINS/schemathesis"
log() { printf '[install-schemathesis] %s\n' "$*" >&2; }

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3-venv from Debian"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >&2
fi

mkdir -p "$TOOLCHAINS"
exec 9>"$TOOLCHAINS/.schemathesis.lock"
flock 9
if [ -x "$VENV/bin/st" ] && [ "$(cat "$VENV/.version" 2>/dev/null)" = "$VERSION" ]; then
  log "cached in $VENV"
else
  log "pip install schemathesis==$VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
  echo "$VERSION" > "$VENV/.version"
fi
echo "$VENV/bin/st"
