#!/usr/bin/env bash
# Builds the demo app as a static binary and wraps it in local FROM-scratch Docker images.
#
#   demo/build-image.sh v1 [v2 ...]    -> hivemind-demo:v1, hivemind-demo:v2, ...
#
# Each image sets VERSION to its tag, so `docker run hivemind-demo:v2` answers "v2".
# Nothing is pulled or pushed.
set -euo pipefail

die() {
    echo "build-image.sh: $*" >&2
    exit 1
}

if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
    echo "usage: $0 VERSION [VERSION ...]" >&2
    exit 2
fi
for version in "$@"; do
    # A Docker tag, which is also a valid VERSION for the app (visible ASCII, no quotes).
    [[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$version' is not a valid image tag"
done

command -v cargo >/dev/null || die "cargo not found"
command -v docker >/dev/null || die "docker not found"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target="$(uname -m)-unknown-linux-gnu" # x86_64-unknown-linux-gnu on x86-64 hosts
target_dir="$repo/target/demo-static"
bin="$target_dir/$target/release/hivemind-demo"

echo "building a static hivemind-demo for $target..." >&2
# With --target, RUSTFLAGS applies to the target only, not to build scripts or proc macros.
# CARGO_ENCODED_RUSTFLAGS would take precedence over RUSTFLAGS, so drop it.
(
    cd "$repo"
    unset CARGO_ENCODED_RUSTFLAGS
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -p hivemind-demo --target "$target" --target-dir "$target_dir"
)
[[ -x $bin ]] || die "build produced no binary at $bin"

# Refuse a dynamically linked binary: it would not start in a scratch image.
if command -v file >/dev/null; then
    kind=$(file -b "$bin")
    [[ $kind == *"statically linked"* || $kind == *"static-pie linked"* ]] ||
        die "$bin is not statically linked: $kind"
else
    kind=$(ldd "$bin" 2>&1 || true)
    [[ $kind == *"not a dynamic executable"* || $kind == *"statically linked"* ]] ||
        die "$bin is not statically linked: $kind"
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
install -m 0755 "$bin" "$context/hivemind-demo"

for version in "$@"; do
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM scratch
COPY hivemind-demo /hivemind-demo
ENV VERSION=$version PORT=8080
EXPOSE 8080
ENTRYPOINT ["/hivemind-demo"]
DOCKERFILE
    # Quiet unless it fails (the legacy builder prints a deprecation notice on stderr).
    if ! output=$(docker build -q -t "hivemind-demo:$version" "$context" 2>&1); then
        echo "$output" >&2
        die "docker build failed for hivemind-demo:$version"
    fi
    echo "hivemind-demo:$version"
done
