#!/usr/bin/env bash
# Peer comparisons, each run on the same data in the same run, printing medians and ratios.
# Needs the servers `make services` ensures. Python peers run in bench/.venv (created on demand).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# The venv is shared with bench/gateway.sh, which may have created it without pika.
if ! "$venv/bin/python" -c 'import pika' 2>/dev/null; then
  "$venv/bin/pip" install --quiet pika==1.3.2
fi

echo "== publisher confirms: 2000 persistent 300-byte JSON messages to a durable queue (median of 5) =="
rust=$(cargo run --quiet --release -p sutazai-messaging --example publish_throughput)
peer=$("$venv/bin/python" bench/peers/pika_publish.py)
echo "$rust"
echo "$peer"
value() { echo "$1" | awk -v key="$2" '$1 == key { print $2 }'; }
sequential=$(value "$rust" rust_sequential_confirm_msgs_per_s)
batched=$(value "$rust" rust_batched_confirm_msgs_per_s)
pika=$(value "$peer" pika_sequential_confirm_msgs_per_s)
awk -v s="$sequential" -v b="$batched" -v p="$pika" 'BEGIN {
  printf "ratio sequential rust/pika: %.2f\n", s / p
  printf "ratio batched rust / sequential pika: %.2f\n", b / p
}'
