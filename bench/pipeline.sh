#!/usr/bin/env bash
# `make bench-pipeline`: N no-op tasks through our full durable path — gRPC submit, Postgres
# state + outbox, persistent messages with publisher confirms, the coordinator's assignment, a
# `noop` agent that acks after publishing its outcome — then the same number through Celery on the
# same RabbitMQ (acks_late, persistent messages, confirms, results in Redis), back to back, with
# the same number of concurrent submitters. Each side runs a burst (tasks/s, p50/p99
# submit -> succeeded) and a paced phase at BENCH_RATE tasks/s (p50/p99 at that load).
#
# Knobs (environment): BENCH_TASKS (5000), BENCH_RATE (500), BENCH_PACED_S (5),
# BENCH_SUBMITTERS (16), BENCH_CELERY_CONCURRENCY (2). Needs the Postgres, Redis and RabbitMQ
# `make services` ensures.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_TASKS=${BENCH_TASKS:-5000} BENCH_RATE=${BENCH_RATE:-500} BENCH_PACED_S=${BENCH_PACED_S:-5}
export BENCH_SUBMITTERS=${BENCH_SUBMITTERS:-16}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sutazai-release-target}"

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import celery, redis' 2>/dev/null; then
  echo "installing Celery into $venv"
  "$venv/bin/pip" install --quiet celery==5.7.0 redis==8.1.0
fi

echo "building the pipeline bench (release)"
cargo build --quiet --release -p sutazai --example pipeline_bench
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

echo "== $BENCH_TASKS no-op tasks, $BENCH_SUBMITTERS submitters; paced $BENCH_RATE/s for $BENCH_PACED_S s; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) =="
"$CARGO_TARGET_DIR/release/examples/pipeline_bench" | tee "$workdir/ours.jsonl"
(cd bench/pipeline && "../../$venv/bin/python" celery_bench.py) | grep '^{' | tee "$workdir/celery.jsonl"
"$venv/bin/python" - "$workdir/ours.jsonl" "$workdir/celery.jsonl" <<'PY'
import json, sys
ours, peer = ({row["phase"]: row for row in map(json.loads, open(path)) if row.get("phase")} for path in sys.argv[1:3])
for name, row in (("sutazai", ours), ("celery", peer)):
    burst, paced = row["burst"], row["paced"]
    print(f"{name:8} burst {burst['tasks_per_s']:8.0f} tasks/s  p50 {burst['p50_ms']:7.1f} ms  p99 {burst['p99_ms']:7.1f} ms"
          f" | paced {paced['achieved_rate']:5.0f}/s  p50 {paced['p50_ms']:6.1f} ms  p99 {paced['p99_ms']:6.1f} ms")
print(f"ratio sutazai/celery tasks/s: {ours['burst']['tasks_per_s'] / peer['burst']['tasks_per_s']:.2f}")
PY
