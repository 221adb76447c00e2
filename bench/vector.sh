#!/usr/bin/env bash
# `make bench-vector`: one seeded dataset (default 200k x 128 clustered float32, 1,000 queries,
# exact top-10 from FAISS), then FAISS IndexFlatL2, FAISS IndexHNSWFlat, hnswlib and our Flat and
# HNSW engines on it in the same run, same M / ef_construction / ef_search and thread count.
# Prints QPS (one query at a time, and all queries in one batch call), recall@10, build time,
# memory and our/peer ratios.
#
# Knobs (environment): BENCH_BASE (200000), BENCH_QUERIES (1000), BENCH_DIM (128),
# BENCH_THREADS (2), BENCH_M (16), BENCH_EF_CONSTRUCTION (200), BENCH_EF_SEARCH (64).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BENCH_BASE:-200000}
queries=${BENCH_QUERIES:-1000}
dimension=${BENCH_DIM:-128}
threads=${BENCH_THREADS:-2}
m=${BENCH_M:-16}
ef_construction=${BENCH_EF_CONSTRUCTION:-200}
ef_search=${BENCH_EF_SEARCH:-64}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sutazai-release-target}"

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import faiss, hnswlib, numpy' 2>/dev/null; then
  echo "installing faiss-cpu, hnswlib and numpy into $venv (hnswlib compiles)"
  "$venv/bin/pip" install --quiet numpy faiss-cpu==1.15.1 hnswlib==0.8.0
fi

echo "building the engine benchmark (release)"
cargo build --quiet --release -p sutazai-vector-index --example ann_bench
workdir=$(mktemp -d /var/tmp/sutazai-bench-vector.XXXXXX)
trap 'rm -rf "$workdir"' EXIT

echo "dataset: $base x $dimension clustered, $queries queries; threads $threads; M $m, ef_construction $ef_construction, ef_search $ef_search"
OMP_NUM_THREADS=$threads "$venv/bin/python" bench/vector/peers.py --out "$workdir" --base "$base" \
  --queries "$queries" --dimension "$dimension" --threads "$threads" --m "$m" \
  --ef-construction "$ef_construction" --ef-search "$ef_search" > "$workdir/peers.jsonl"
RAYON_NUM_THREADS=$threads "$CARGO_TARGET_DIR/release/examples/ann_bench" \
  "$workdir/base.fvecs" "$workdir/queries.fvecs" "$workdir/truth.ivecs" --threads "$threads" --m "$m" \
  --ef-construction "$ef_construction" --ef-search "$ef_search" --engines flat,hnsw > "$workdir/ours.jsonl"

"$venv/bin/python" - "$workdir/peers.jsonl" "$workdir/ours.jsonl" <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            rows[row["engine"]] = row
print(f"{'engine':<14}{'build s':>9}{'QPS 1-by-1':>12}{'QPS batch':>11}{'recall@10':>11}{'memory MiB':>12}")
for name, row in rows.items():
    print(f"{name:<14}{row['build_s']:>9.2f}{row['qps_single']:>12.0f}{row['qps_batch']:>11.0f}"
          f"{row['recall_at_10']:>11.3f}{row['memory_bytes'] / 2**20:>12.1f}")
def ratio(ours, peer, key):
    if ours in rows and peer in rows and rows[peer][key]:
        return rows[ours][key] / rows[peer][key]
    return float("nan")
print()
print(f"flat vs faiss-flat: QPS 1-by-1 {ratio('sutazai-flat', 'faiss-flat', 'qps_single'):.2f}x, "
      f"batch {ratio('sutazai-flat', 'faiss-flat', 'qps_batch'):.2f}x (goal >= 1.0x)")
print(f"hnsw vs hnswlib:    QPS 1-by-1 {ratio('sutazai-hnsw', 'hnswlib', 'qps_single'):.2f}x, "
      f"batch {ratio('sutazai-hnsw', 'hnswlib', 'qps_batch'):.2f}x (goal >= 1.3x at recall >= 0.95), "
      f"build time {ratio('sutazai-hnsw', 'hnswlib', 'build_s'):.2f}x (goal <= 1.0x)")
print(f"hnsw vs faiss-hnsw: QPS 1-by-1 {ratio('sutazai-hnsw', 'faiss-hnsw', 'qps_single'):.2f}x, "
      f"batch {ratio('sutazai-hnsw', 'faiss-hnsw', 'qps_batch'):.2f}x")
PY
