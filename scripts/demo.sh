#!/usr/bin/env bash
# The main job: build `loyalty`, start the server on its embedded SQLite default, and play a short
# demo of an operator and a member's phone against it. The server keeps running afterwards (Ctrl-C
# stops it) so you can go on with `target/release/loyalty device --store demo-data/phone.db ...`.
# DEMO_EXIT=1 stops the server when the demo is done (the test command uses this).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
LISTEN=${LOYALTY_LISTEN:-127.0.0.1:8080}
DATA=${DEMO_DATA:-demo-data}
export LOYALTY_OPERATOR_TOKEN=${LOYALTY_OPERATOR_TOKEN:-demo-operator-token-change-me}
export LOYALTY_TILL_TOKEN=${LOYALTY_TILL_TOKEN:-demo-till-token-change-me}

echo "==> building loyalty ($PROFILE)"
if [ "$PROFILE" = release ]; then cargo build --release --bin loyalty; else cargo build --bin loyalty; fi
L="${CARGO_TARGET_DIR:-target}/$PROFILE/loyalty"

rm -rf "$DATA" && mkdir -p "$DATA"
echo "==> starting the server on $LISTEN (database $DATA/server.db)"
"$L" server --listen "$LISTEN" --database "$DATA/server.db" > "$DATA/server.out" 2> "$DATA/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "listening on" "$DATA/server.out" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
  sleep 0.1
done
LOYALTY_SERVER=$(sed -n 's/^listening on //p' "$DATA/server.out")
[ -n "$LOYALTY_SERVER" ] || { echo "the server did not start"; cat "$DATA/server.log"; exit 1; }
export LOYALTY_SERVER
echo "server listening at $LOYALTY_SERVER"

step() { echo; echo "\$ loyalty $*"; "$L" "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

echo; echo "==> an operator sets up the programme: earning rules, points that mature and expire, tiers"
step admin programme set docs/programme.example.json

echo; echo "==> an operator enrolls a member and gives them something to sync"
"$L" admin --json create-member > "$DATA/member.json"
MEMBER=$(json_field member_id < "$DATA/member.json")
CODE=$(json_field activation_code < "$DATA/member.json")
echo "member $MEMBER, activation code $CODE"
step admin offer "$MEMBER" --id coffee --title "20% off all coffee" --description "Beans and ground" --needs-activation --reward percent_off --value 20 --category coffee
step admin offer "$MEMBER" --id bread --title "Double points on bread" --days 7 --reward points_multiplier --value 200 --category bread --use-limit 0
step admin message "$MEMBER" --kind service --id welcome --subject "Welcome to the programme" --body "Show your code at the till to collect points."

echo; echo "==> the member's phone enrolls and syncs"
P=(device --store "$DATA/phone.db")
step "${P[@]}" enroll --code "$CODE" --name "demo phone"
step "${P[@]}" card
step "${P[@]}" offers
step "${P[@]}" inbox

echo; echo "==> offline, the member clips an offer and reads the message; then syncs"
step "${P[@]}" activate coffee
step "${P[@]}" read welcome
step "${P[@]}" sync
step "${P[@]}" sync

echo; echo "==> the server agrees"
step admin show "$MEMBER"

echo; echo "==> at the till, with no signal: the phone shows its checkout code (made offline)"
step "${P[@]}" code --terminal --png "$DATA/code.png"
echo; echo "==> the till scans it and posts a purchase of 42.50: coffee (the clipped offer applies) and bread"
SESSION=$("$L" till --json scan --png "$DATA/code.png" | json_field session_id)
echo "checkout session $SESSION"
step till purchase --session "$SESSION" --total 42.50 --receipt R-1001 --line coffee:coffee:30.00 --line bread:bread:12.50
echo; echo "==> a screenshot of the same code is refused"
"$L" till scan --png "$DATA/code.png" && { echo "a replayed code was accepted"; exit 1; } || true
echo; echo "==> the phone syncs and explains its balance"
step "${P[@]}" sync
step "${P[@]}" card

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  echo; echo "demo done"
  exit 0
fi
echo
echo "The server is still running at $LOYALTY_SERVER (Ctrl-C stops it). Try:"
echo "  $L ${P[*]} offers"
echo "  LOYALTY_OPERATOR_TOKEN=$LOYALTY_OPERATOR_TOKEN $L admin message $MEMBER --kind service --subject Hi"
wait $SERVER
