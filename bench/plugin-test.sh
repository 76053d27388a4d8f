#!/usr/bin/env bash
# How long `hivemind plugin test` (the strategy simulator) takes to run every scenario
# for one plugin: the six built-in strategies and the hostile test plugins, each run
# five times; prints the median and slowest wall time of each (the issue's goal: under
# 5 s for all scenarios of one plugin).
#
#   bench/plugin-test.sh [debug|release]      (default: debug, the binary the tests use)
set -euo pipefail
profile=${1:-debug}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
if [ "$profile" = release ]; then cargo build --release -q -p hivemind; else cargo build -q -p hivemind; fi
hivemind=$target/$profile/hivemind
builtins=$target/wasm-plugins/wasm32-wasip2/release
tests=$target/test-plugins/wasm32-wasip2/release
if [ ! -f "$tests/spin.wasm" ]; then
    (cd tests/plugins && cargo build -q --release --target wasm32-wasip2 --target-dir "$target/test-plugins")
fi

run() { # NAME FILE ARGS...: five runs, median and slowest in ms
    local name=$1 file=$2; shift 2
    local times=()
    for _ in 1 2 3 4 5; do
        local start end
        start=$(date +%s%N)
        "$hivemind" plugin test "$file" "$@" --brief >/dev/null || true
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000000 )))
    done
    local sorted
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    printf '%-32s median %5d ms   slowest %5d ms\n' "$name" "$(sed -n 3p <<<"$sorted")" "$(sed -n 5p <<<"$sorted")"
}

echo "hivemind plugin test ($profile binary), 4 scenarios per plugin, 5 runs each:"
for p in simple rolling_update zero_downtime blue_green canary ab_testing; do
    run "$p" "$builtins/$p.wasm"
done
run "test-spin (endless loop)" "$tests/spin.wasm"
run "test-hog (memory)" "$tests/hog.wasm"
run "test-hostile mode=busy" "$tests/hostile.wasm" --param mode=busy
run "test-hostile mode=bad-rollback" "$tests/hostile.wasm" --param mode=bad-rollback
