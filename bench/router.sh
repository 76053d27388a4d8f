#!/usr/bin/env bash
# Drives one small backend five ways in one run — directly, through Hivemind's router
# process (`hivemind router`, the default), through the router embedded in `serve`
# (`--router-mode embedded`), through nginx and through HAProxy — with wrk, and prints
# requests per second, p50 and p99 latency for each, and the ratios router/nginx,
# router/haproxy and router/direct. Then the same over TLS (the HTTPS entrypoint, nginx
# and HAProxy terminating TLS with one certificate), in HTTP/1.1 (wrk) and HTTP/2 (h2load).
#
#   bench/router.sh [DURATION_S] [CONNECTIONS]      (defaults: 10 s, 64 connections)
#
# Installs wrk, nginx and HAProxy from Debian's packages when they are missing. Sends
# traffic to 127.0.0.1 only; every process it starts is stopped when it ends.
set -euo pipefail
duration=${1:-10}
connections=${2:-64}
threads=2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p hivemind -p hivemind-demo
hivemind=$repo/target/release/hivemind
demo=$repo/target/release/hivemind-demo

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    # The router process outlives `serve` by design: stop it too.
    [ -f "$work/data/router.pid" ] && kill "$(cat "$work/data/router.pid")" 2>/dev/null || true
    # The backend replica outlives the server by design; stop its process group.
    [ -n "${backend_pid:-}" ] && kill -TERM "-$backend_pid" 2>/dev/null || true
    [ -n "${embedded_backend_pid:-}" ] && kill -TERM "-$embedded_backend_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api=$(free_port)
router_port=$(free_port)
embedded_api=$(free_port)
embedded_port=$(free_port)
nginx_port=$(free_port)
haproxy_port=$(free_port)
tls_port=$(free_port)
nginx_tls=$(free_port)
haproxy_tls=$(free_port)
export HIVEMIND_URL=http://127.0.0.1:$api

# One certificate for every proxy's TLS case: localhost, which resolves to 127.0.0.1 here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
cat "$work/tls.pem" "$work/tls.key" >"$work/tls-haproxy.pem"

"$hivemind" serve --data-dir "$work/data" --api-addr "127.0.0.1:$api" --runtime process \
    --https-addr "127.0.0.1:$tls_port" >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "$HIVEMIND_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export HIVEMIND_TOKEN=$(cat "$work/data/token")
"$hivemind" app deploy --name bench --image "$demo bench" --replicas 1 --port "$router_port" --health-check-path /health \
    --host localhost >/dev/null
"$hivemind" cert add --host localhost --cert "$work/tls.pem" --key "$work/tls.key" >/dev/null
replica=$("$hivemind" app get --name bench --output json)
backend=$(echo "$replica" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replicas"][0]["address"])')
backend_pid=$(echo "$replica" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replicas"][0]["handle"])')

# The router embedded in `serve` (what wave 1 shipped), on a data dir of its own: its
# replica is a second demo process, the same binary as the first.
"$hivemind" serve --router-mode embedded --data-dir "$work/embedded" --api-addr "127.0.0.1:$embedded_api" --runtime process >"$work/embedded.out" 2>"$work/embedded.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$embedded_api/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
HIVEMIND_URL=http://127.0.0.1:$embedded_api HIVEMIND_TOKEN=$(cat "$work/embedded/token") \
    "$hivemind" app deploy --name bench --image "$demo bench" --replicas 1 --port "$embedded_port" --health-check-path /health >/dev/null
embedded_backend_pid=$(HIVEMIND_URL=http://127.0.0.1:$embedded_api HIVEMIND_TOKEN=$(cat "$work/embedded/token") \
    "$hivemind" app get --name bench --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["replicas"][0]["handle"])')

location='location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }'
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    # nginx closes a connection after 1,000 requests by default, HTTP/2 ones included,
    # and h2load does not reconnect: the other proxies set no such limit.
    keepalive_requests 1000000;
    upstream backend { server $backend; keepalive 256; }
    server {
        listen 127.0.0.1:$nginx_port;
        $location
    }
    server {
        listen 127.0.0.1:$nginx_tls ssl http2;
        ssl_certificate $work/tls.pem;
        ssl_certificate_key $work/tls.key;
        $location
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"

cat >"$work/haproxy.cfg" <<HAPROXY
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    option forwardfor
frontend bench
    bind 127.0.0.1:$haproxy_port
    default_backend app
frontend bench_tls
    bind 127.0.0.1:$haproxy_tls ssl crt $work/tls-haproxy.pem alpn h2,http/1.1
    default_backend app
backend app
    http-reuse always
    server demo $backend
HAPROXY
haproxy -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)

for port in "${backend#*:}" "$router_port" "$embedded_port" "$nginx_port" "$haproxy_port"; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
done

# wrk's latency distribution prints values like 310.00us, 1.20ms or 1.02s; normalise to ms.
to_ms() { python3 -c 'import sys,re; v=sys.argv[1]; m=re.match(r"([\d.]+)(us|ms|s)$", v); n=float(m.group(1)); print("%.3f" % (n/1000 if m.group(2)=="us" else n*1000 if m.group(2)=="s" else n))' "$1"; }
declare -A rps p50 p99
run() {
    local name=$1 port=$2
    wrk -t"$threads" -c"$connections" -d2s "http://127.0.0.1:$port/" >/dev/null # warm up pools
    local out
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$port/")
    rps[$name]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50[$name]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99[$name]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    local errors
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/' || true)
    [ -n "$errors" ] && echo "  $name: $errors" >&2
    return 0
}
run direct "${backend#*:}"
run hivemind "$router_port"
run embedded "$embedded_port"
run nginx "$nginx_port"
run haproxy "$haproxy_port"

echo
echo "wrk -t$threads -c$connections -d${duration}s, backend: hivemind-demo on $backend ($(nproc) cores, $(uname -m))"
printf '%-10s %12s %10s %10s\n' target req/s p50_ms p99_ms
for name in direct hivemind embedded nginx haproxy; do
    printf '%-10s %12s %10s %10s\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}"
done
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
echo
echo "throughput  router/nginx $(ratio "${rps[hivemind]}" "${rps[nginx]}")   router/haproxy $(ratio "${rps[hivemind]}" "${rps[haproxy]}")   router/direct $(ratio "${rps[hivemind]}" "${rps[direct]}")"
echo "p99         router/nginx $(ratio "${p99[hivemind]}" "${p99[nginx]}")   router/haproxy $(ratio "${p99[hivemind]}" "${p99[haproxy]}")   router/direct $(ratio "${p99[hivemind]}" "${p99[direct]}")"
echo "router process/embedded: throughput $(ratio "${rps[hivemind]}" "${rps[embedded]}"), p99 $(ratio "${p99[hivemind]}" "${p99[embedded]}")"

# TLS: the same backend behind the HTTPS entrypoint, nginx and HAProxy terminating TLS
# with the same certificate; HTTP/1.1 keep-alive with wrk, and HTTP/2 with h2load (10
# streams a connection). h2load prints no percentiles: p99 comes from its request log.
run_tls() {
    local name=$1 port=$2
    wrk -t"$threads" -c"$connections" -d2s "https://localhost:$port/" >/dev/null
    local out
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "https://localhost:$port/")
    rps[$name]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50[$name]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99[$name]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    return 0
}
run_h2() {
    local name=$1 port=$2
    h2load -D 2 -c"$connections" -m10 -t"$threads" "https://localhost:$port/" >/dev/null
    local out
    out=$(h2load -D "$duration" -c"$connections" -m10 -t"$threads" --log-file "$work/h2-$name.log" "https://localhost:$port/")
    rps[$name]=$(echo "$out" | awk '/^finished in/ {print $4}')
    read -r p50[$name] p99[$name] < <(python3 -c 'import sys
d = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
print("%.3f %.3f" % (d[len(d) // 2] / 1000, d[int(len(d) * 0.99)] / 1000))' "$work/h2-$name.log")
    local failed
    failed=$(echo "$out" | awk '/^requests:/ {print $10, $12}')
    [ "$failed" != "0 0" ] && echo "  $name: failed, errored: $failed" >&2
    return 0
}
for port in "$tls_port" "$nginx_tls" "$haproxy_tls"; do
    for _ in $(seq 100); do curl -kfs "https://localhost:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
done
run_tls tls-hivemind "$tls_port"
run_tls tls-nginx "$nginx_tls"
run_tls tls-haproxy "$haproxy_tls"
run_h2 h2-hivemind "$tls_port"
run_h2 h2-nginx "$nginx_tls"
run_h2 h2-haproxy "$haproxy_tls"
echo
echo "TLS (the same certificate; wrk for HTTP/1.1 keep-alive, h2load -m10 for HTTP/2)"
printf '%-12s %12s %10s %10s\n' target req/s p50_ms p99_ms
for name in tls-hivemind tls-nginx tls-haproxy h2-hivemind h2-nginx h2-haproxy; do
    printf '%-12s %12s %10s %10s\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}"
done
echo
for kind in tls h2; do
    echo "$kind throughput  router/nginx $(ratio "${rps[$kind-hivemind]}" "${rps[$kind-nginx]}")   router/haproxy $(ratio "${rps[$kind-hivemind]}" "${rps[$kind-haproxy]}")"
    echo "$kind p99         router/nginx $(ratio "${p99[$kind-hivemind]}" "${p99[$kind-nginx]}")   router/haproxy $(ratio "${p99[$kind-hivemind]}" "${p99[$kind-haproxy]}")"
done
