#!/usr/bin/env bash
# Copies the console's one third-party file, Chart.js's dist/chart.umd.min.js (its MIT licence
# header intact), from the version pinned by server/console/package-lock.json into
# server/console/vendor/, where the server embeds it. The copy is committed, so building the
# server needs no node; run this after changing the pin, and commit both.
#
#   scripts/console-vendor.sh          copy the pinned file into vendor/
#   scripts/console-vendor.sh --check  fail unless vendor/ holds exactly the pinned file
set -euo pipefail
cd "$(dirname "$0")/../server/console"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
pinned="$work/node_modules/chart.js/dist/chart.umd.min.js"

if [ "${1:-}" = "--check" ]; then
  if cmp -s "$pinned" vendor/chart.umd.min.js; then
    echo "vendor/chart.umd.min.js is chart.js $(node -p "require('$work/node_modules/chart.js/package.json').version")" >&2
  else
    echo "vendor/chart.umd.min.js differs from the pinned chart.js; run scripts/console-vendor.sh" >&2
    exit 1
  fi
else
  mkdir -p vendor
  cp "$pinned" vendor/chart.umd.min.js
  echo "copied chart.js $(node -p "require('$work/node_modules/chart.js/package.json').version") into server/console/vendor/" >&2
fi
