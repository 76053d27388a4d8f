#!/usr/bin/env bash
# The main job on a fresh clone, with the embedded defaults (SQLite, the process runtime,
# the built-in plugins; no Docker needed):
#   1. builds hivemind and the demo app,
#   2. starts a server on a temporary data dir,
#   3. deploys demo v1 with 3 replicas behind the router on 127.0.0.1:18080,
#   4. deploys v2 with the simple strategy and shows it serving,
#   5. stops the replicas and the server.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]; then
    echo "== installing the wasm32-wasip2 target (the built-in strategies compile to it)"
    rustup target add wasm32-wasip2 || bash ../shared/toolchain/ensure-wasm-target.sh
fi

echo "== building hivemind and the demo app"
cargo build --release -p hivemind -p hivemind-demo
hivemind=$repo/target/release/hivemind
demo=$repo/target/release/hivemind-demo

data=$(mktemp -d)
export HIVEMIND_URL=http://127.0.0.1:17070
"$hivemind" serve --data-dir "$data" --api-addr 127.0.0.1:17070 --runtime process >"$data/server.out" 2>"$data/server.log" &
server=$!
cleanup() {
    # Replicas outlive the server by design (a restart adopts them): stop them first.
    for pid in $("$hivemind" app get --name web --output json 2>/dev/null | sed -n 's/.*"handle": "\([0-9]*\)".*/\1/p'); do
        kill -TERM "-$pid" 2>/dev/null || true
    done
    kill "$server" 2>/dev/null || true
    # So does the router process (`hivemind router`), which serve started.
    [ -f "$data/router.pid" ] && kill "$(cat "$data/router.pid")" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -fs "$HIVEMIND_URL/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
# The server made an API token at first start; the CLI reads it from HIVEMIND_TOKEN.
export HIVEMIND_TOKEN=$(cat "$data/token")

echo "== deploying v1 (3 replicas) on http://127.0.0.1:18080"
"$hivemind" app deploy --name web --image "$demo v1" --replicas 3 --port 18080 --health-check-path /health
for _ in 1 2 3; do printf 'GET / -> %s' "$(curl -s http://127.0.0.1:18080/)"; echo; done

echo "== deploying v2 with the simple strategy"
"$hivemind" app deploy --name web --image "$demo v2" --replicas 3 --health-check-path /health
for _ in 1 2 3; do printf 'GET / -> %s' "$(curl -s http://127.0.0.1:18080/)"; echo; done

echo "== history"
"$hivemind" deployment list
echo
"$hivemind" app get --name web
