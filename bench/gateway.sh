#!/usr/bin/env bash
# `make bench-gateway`: the authenticated GET /api/v1/models (JWT verify + Redis revocation check +
# Redis sliding-window rate limit + a small JSON body) on our gateway, then the same route in
# FastAPI + uvicorn + PyJWT + redis-py (bench/gateway/app.py), back to back, driven by the same Rust
# load generator with the same concurrency; then /health's unloaded latency on our gateway.
# Everything runs on this machine over loopback: the servers, Redis and the load generator share
# its cores, so the figures are for the whole machine, not per core.
#
# Knobs (environment): BENCH_CONNECTIONS (32), BENCH_DURATION_S (10), LOADGEN_THREADS (1),
# BENCH_GATEWAY_PORT (18010), BENCH_AUTH_PORT (18011), BENCH_FASTAPI_PORT (18020).
# Needs the Postgres and Redis `make services` ensures.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=${BENCH_CONNECTIONS:-32}
duration_s=${BENCH_DURATION_S:-10}
health_duration_s=5
gateway_port=${BENCH_GATEWAY_PORT:-18010}
auth_port=${BENCH_AUTH_PORT:-18011}
fastapi_port=${BENCH_FASTAPI_PORT:-18020}
# uvicorn runs one worker process per core: each worker is single-threaded, so fewer would leave
# a core idle and more would only contend.
fastapi_workers=2
# The Makefile sets CARGO_TARGET_DIR; run by hand, release builds go to their own directory so they
# do not evict the debug artifacts the tests use.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sutazai-release-target}"

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import fastapi, uvicorn, jwt, cryptography, redis, hiredis, uvloop, httptools' 2>/dev/null; then
  echo "installing the FastAPI peer's packages into $venv"
  "$venv/bin/pip" install --quiet fastapi==0.165.0 'uvicorn[standard]==0.54.0' 'pyjwt[crypto]==2.15.1' \
    redis==8.1.0 hiredis==3.5.0
fi

echo "building the bench server and the load generator (release)"
cargo build --quiet --release -p sutazai-gateway --example bench_server --example loadgen
bin="$CARGO_TARGET_DIR/release/examples"

workdir=$(mktemp -d)
server_pid=""
fastapi_pid=""
# Stops a background process: SIGTERM, up to 10 s to exit, then SIGKILL.
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  # uvicorn first: the bench server's exit deletes the Redis keys both servers wrote.
  stop "$fastapi_pid"
  stop "$server_pid"
  rm -rf "$workdir"
}
trap cleanup EXIT

: >"$workdir/server.out"
"$bin/bench_server" "$gateway_port" "$auth_port" >"$workdir/server.out" 2>"$workdir/server.err" &
server_pid=$!
for _ in $(seq 1 300); do
  grep -qx READY "$workdir/server.out" && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "bench_server exited before it was ready:" >&2
    cat "$workdir/server.err" >&2
    exit 1
  fi
  sleep 0.1
done
grep -qx READY "$workdir/server.out" || { echo "bench_server not ready after 30 s" >&2; exit 1; }
server() { awk -v key="$1" '$1 == key { print $2 }' "$workdir/server.out"; }
token=$(server TOKEN)
gateway_url=$(server GATEWAY)
fastapi_url="http://127.0.0.1:$fastapi_port"

export BENCH_AUTH_URL BENCH_OLLAMA_URL BENCH_MODEL BENCH_ISSUER BENCH_AUDIENCE BENCH_REDIS_URL BENCH_REDIS_PREFIX
BENCH_AUTH_URL=$(server AUTH)
BENCH_OLLAMA_URL=$(server OLLAMA)
BENCH_MODEL=$(server MODEL)
BENCH_ISSUER=$(server ISSUER)
BENCH_AUDIENCE=$(server AUDIENCE)
BENCH_REDIS_URL=$(server REDIS_URL)
BENCH_REDIS_PREFIX=$(server REDIS_PREFIX)
"$venv/bin/uvicorn" app:app --app-dir bench/gateway --host 127.0.0.1 --port "$fastapi_port" \
  --workers "$fastapi_workers" --loop uvloop --http httptools --no-access-log --log-level warning \
  >"$workdir/fastapi.out" 2>&1 &
fastapi_pid=$!
fastapi_ready=false
for _ in $(seq 1 300); do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$fastapi_url/api/v1/models" || true)
  if [ "$status" = 200 ]; then fastapi_ready=true; break; fi
  if ! kill -0 "$fastapi_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ "$fastapi_ready" != true ]; then
  echo "the FastAPI peer did not start:" >&2
  cat "$workdir/fastapi.out" >&2
  exit 1
fi
# The first answer comes from whichever worker imported the app first; give the other one time.
sleep 2

# Both routes must answer the same body to the same token, and refuse a missing one, before their
# speeds mean anything.
curl -sf -H "Authorization: Bearer $token" "$gateway_url/api/v1/models" >"$workdir/ours.json"
curl -sf -H "Authorization: Bearer $token" "$fastapi_url/api/v1/models" >"$workdir/peer.json"
"$venv/bin/python" - "$workdir/ours.json" "$workdir/peer.json" <<'EOF'
import json, sys
ours, peer = (json.load(open(path)) for path in sys.argv[1:3])
if ours != peer:
    sys.exit(f"the two routes answer different bodies:\n ours: {ours}\n peer: {peer}")
EOF
for url in "$gateway_url" "$fastapi_url"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' "$url/api/v1/models")
  [ "$status" = 401 ] || { echo "$url/api/v1/models without a token answered $status, not 401" >&2; exit 1; }
done

value() { echo "$1" | awk -v key="$2" '$1 == key { print $2 }'; }
load() { awk '{ print $1 }' /proc/loadavg; }
summary() { printf '%-8s requests_per_s %s  p50_us %s  p99_us %s  errors %s\n' "$1" \
  "$(value "$2" requests_per_s)" "$(value "$2" p50_us)" "$(value "$2" p99_us)" "$(value "$2" errors)"; }

echo "== GET /api/v1/models with a bearer token: $connections connections, ${duration_s} s after 1 s warm-up, loadgen threads ${LOADGEN_THREADS:-1}, $(nproc) cores =="
echo "load average before ours: $(load)"
ours=$("$bin/loadgen" "$gateway_url/api/v1/models" "$connections" "$duration_s" "$token")
echo "load average before fastapi: $(load)"
peer=$("$bin/loadgen" "$fastapi_url/api/v1/models" "$connections" "$duration_s" "$token")
summary sutazai "$ours"
summary fastapi "$peer"
awk -v ours="$(value "$ours" requests_per_s)" -v peer="$(value "$peer" requests_per_s)" \
  -v workers="$fastapi_workers" 'BEGIN {
  printf "ratio sutazai/fastapi requests_per_s: %.2f (fastapi: uvicorn --workers %d, uvloop, httptools, hiredis)\n", ours / peer, workers
}'

echo "== GET /health (rate-limited by client IP in Redis, no token): 1 connection, ${health_duration_s} s after 1 s warm-up =="
health=$("$bin/loadgen" "$gateway_url/health" 1 "$health_duration_s")
printf 'sutazai /health p50_us %s  p99_us %s  requests_per_s %s  errors %s\n' "$(value "$health" p50_us)" \
  "$(value "$health" p99_us)" "$(value "$health" requests_per_s)" "$(value "$health" errors)"

errors=$(( $(value "$ours" errors) + $(value "$peer" errors) + $(value "$health" errors) ))
if [ "$errors" -ne 0 ]; then
  echo "INVALID RUN: $errors requests failed (see the loadgen's first error above)" >&2
  exit 1
fi
