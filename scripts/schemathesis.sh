#!/usr/bin/env bash
# Checks the server against its own OpenAPI document with schemathesis: starts a real `loyalty
# server` on a free loopback port with a temporary SQLite file, creates a member and enrolls a
# device (so every security scheme has real credentials), and runs schemathesis on
# /openapi.json with `not_a_server_error` (no 5xx for any generated input),
# `response_schema_conformance` (every answer matches its documented schema), and the status,
# content type and headers of every answer documented for its operation.
#
# Needs a built `loyalty` (cargo build --bin loyalty). ST_MAX_EXAMPLES bounds the examples per
# operation (default 25: under two minutes here).
set -euo pipefail
cd "$(dirname "$0")/.."

ST=$(bash .ci/install-schemathesis.sh)
L="${CARGO_TARGET_DIR:-target}/${PROFILE:-debug}/loyalty"
DATA=$(mktemp -d)
export LOYALTY_OPERATOR_TOKEN=schemathesis-operator-token-0123
export LOYALTY_TILL_TOKEN=schemathesis-till-token-01234567

# No per-address limits: every generated request comes from 127.0.0.1, and after 20 refused
# credentials (schemathesis tries requests without them) the rest would all be `429`.
"$L" server --listen 127.0.0.1:0 --database "$DATA/server.db" \
  --enroll-per-minute 0 --auth-failures-per-minute 0 \
  > "$DATA/server.out" 2> "$DATA/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$DATA/server.out" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$DATA/server.out")
[ -n "$URL" ] || { echo "the server did not start"; cat "$DATA/server.log"; exit 1; }
export LOYALTY_SERVER=$URL

# A member and an enrolled device. The key is RFC 8032's first test key: a valid Ed25519 point.
member=$("$L" admin --json create-member)
code=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["activation_code"])' <<<"$member")
enrolled=$(python3 - "$URL" "$code" <<'PY'
import json, sys, urllib.request
url, code = sys.argv[1], sys.argv[2]
body = {"activation_code": code,
        "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}
request = urllib.request.Request(url + "/v1/enroll", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
print(urllib.request.urlopen(request).read().decode())
PY
)
read -r LOYALTY_MEMBER LOYALTY_DEVICE_TOKEN < <(python3 -c 'import json,sys; e=json.load(sys.stdin)
print(e["member_id"], e["device_id"] + "." + e["device_secret"])' <<<"$enrolled")
export LOYALTY_MEMBER LOYALTY_DEVICE_TOKEN

started=$(date +%s)
rc=0
"$ST" --no-color --config-file scripts/schemathesis.toml run "$URL/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --phases examples,coverage,fuzzing \
  --seed 1 \
  || rc=$?
echo "schemathesis took $(( $(date +%s) - started )) s"
if [ "$rc" != 0 ]; then
  echo "==> the server's log:"; tail -50 "$DATA/server.log"
fi
exit $rc
