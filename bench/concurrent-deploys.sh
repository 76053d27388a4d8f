#!/usr/bin/env bash
# Deploys many apps at once, without --port, several rounds in a row, and prints how many
# failed and how long each round took: every router and every replica must get a port of
# its own (issue 13: one of 50 apps used to fail with "Address already in use").
#
#   bench/concurrent-deploys.sh [APPS] [ROUNDS]      (defaults: 100 apps, 3 rounds)
#
# Process runtime, one replica per app, everything on 127.0.0.1; the apps are removed
# after each round and every process it starts is stopped when it ends.
set -euo pipefail
apps=${1:-100}
rounds=${2:-3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

cargo build --release -q -p hivemind -p hivemind-demo
target=${CARGO_TARGET_DIR:-$repo/target}
hivemind=$target/release/hivemind
demo=$target/release/hivemind-demo

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    [ -f "$work/data/router.pid" ] && kill "$(cat "$work/data/router.pid")" 2>/dev/null || true
    # Replicas outlive the server by design: stop the ones still recorded.
    pkill -f "$demo concurrent" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

api=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HIVEMIND_URL=http://127.0.0.1:$api NO_COLOR=1
"$hivemind" serve --data-dir "$work/data" --api-addr "127.0.0.1:$api" --runtime process \
    --max-replicas $((apps * 2)) --app-replica-quota 2 >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 200); do curl -fs "$HIVEMIND_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export HIVEMIND_TOKEN=$(cat "$work/data/token")

total_failed=0
for round in $(seq "$rounds"); do
    mkdir -p "$work/round$round"
    started=$(date +%s.%N)
    deploying=()
    for i in $(seq "$apps"); do
        ( "$hivemind" app deploy --name "c$i" --image "$demo concurrent" --health-check-path /health \
              --output json >"$work/round$round/c$i.json" 2>"$work/round$round/c$i.err"
          echo $? >"$work/round$round/c$i.code" ) &
        deploying+=($!)
    done
    wait "${deploying[@]}"
    took=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
    failed=0
    for i in $(seq "$apps"); do
        if [ "$(cat "$work/round$round/c$i.code")" != 0 ]; then
            failed=$((failed + 1))
            echo "  c$i failed: $(head -c 300 "$work/round$round/c$i.err")"
        fi
    done
    ports=$("$hivemind" app list --output json | python3 -c 'import json,sys; a=json.load(sys.stdin); print(len({x["port"] for x in a}), len(a))')
    echo "round $round: $apps apps deployed at once in $took s; $failed failed; distinct router ports / apps: $ports"
    total_failed=$((total_failed + failed))
    removing=()
    for i in $(seq "$apps"); do
        "$hivemind" app remove --name "c$i" --force >/dev/null 2>&1 &
        removing+=($!)
    done
    wait "${removing[@]}"
done
echo "all rounds: $total_failed of $((apps * rounds)) deployments failed"
[ "$total_failed" = 0 ]
