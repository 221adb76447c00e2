#!/usr/bin/env bash
# `make bench-llm`: the embedded models through our `local` provider against the same files in
# llama.cpp (llama-cpp-python, built here without -march=native) and sentence-transformers, in
# the same run, same prompt, greedy decoding, token budget, sentences and thread count. Prints both
# JSON results and the ratios ours/peer (goals: generation >= 0.7x llama.cpp, embeddings >= 1.0x
# sentence-transformers).
#
# Knobs (environment): BENCH_LLM_THREADS (2), BENCH_LLM_RUNS (5), BENCH_LLM_TOKENS (128).
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_LLM_THREADS=${BENCH_LLM_THREADS:-2}
export BENCH_LLM_RUNS=${BENCH_LLM_RUNS:-5}
export BENCH_LLM_TOKENS=${BENCH_LLM_TOKENS:-128}
export RAYON_NUM_THREADS=$BENCH_LLM_THREADS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sutazai-release-target}"
models_dir="${SUTAZAI__LLM__LOCAL__MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sutazai/models}"
bash scripts/fetch-models.sh

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  echo "installing llama-cpp-python into $venv (compiles llama.cpp: several minutes)"
  # A native build dies with SIGILL here: the CPU advertises AMX that the VM forbids.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$venv/bin/pip" install --quiet llama-cpp-python==0.3.36
fi
if ! "$venv/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
  echo "installing sentence-transformers (and PyTorch) into $venv"
  "$venv/bin/pip" install --quiet sentence-transformers
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
python3 bench/llm/sentences.py "$workdir/sentences.txt"
export BENCH_LLM_SENTENCES="$workdir/sentences.txt"

cargo build --quiet --release -p sutazai-llm --example llm_bench
"$CARGO_TARGET_DIR/release/examples/llm_bench" > "$workdir/ours.json"
"$venv/bin/python" bench/llm/peers.py "$models_dir" bench/llm/prompt.txt "$workdir/sentences.txt" > "$workdir/peers.json"

python3 - "$workdir/ours.json" "$workdir/peers.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
peers = json.load(open(sys.argv[2]))
llama, st = peers["llama_cpp"], peers["sentence_transformers"]
print("ours:            ", json.dumps(ours))
print("llama.cpp:       ", json.dumps(llama))
print("sentence-transf.:", json.dumps(st))
if ours["prompt_tokens"] != llama["prompt_tokens"]:
    print(f"WARNING: prompt token counts differ (ours {ours['prompt_tokens']}, llama.cpp {llama['prompt_tokens']})")
for name, key, peer, goal in [
    ("prompt processing", "prompt_tokens_per_s", llama, None),
    ("generation", "generation_tokens_per_s", llama, 0.7),
    ("embeddings", "embeddings_per_s", st, 1.0),
]:
    ratio = ours[key] / peer[key]
    verdict = "" if goal is None else (f"  goal >= {goal}x: " + ("met" if ratio >= goal else "NOT met"))
    print(f"{name:18} ours {ours[key]:9.1f}/s  peer {peer[key]:9.1f}/s  ratio {ratio:5.2f}x{verdict}")
PY
