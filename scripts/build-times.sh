#!/usr/bin/env bash
# Measures (1) a cold debug build of the whole workspace with every test target, in an empty target
# directory, and (2) the incremental rebuild after touching one file of sutazai-kit. Prints seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cold_dir=$(mktemp -d /var/tmp/sutazai-cold-XXXXXX)
trap 'rm -rf "$cold_dir"' EXIT
start=$(date +%s%N)
CARGO_TARGET_DIR="$cold_dir" cargo build --workspace --all-targets --quiet
cold_ms=$(( ($(date +%s%N) - start) / 1000000 ))
touch crates/kit/src/health.rs
start=$(date +%s%N)
CARGO_TARGET_DIR="$cold_dir" cargo build --workspace --all-targets --quiet
incremental_ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'cold debug build (workspace, all targets): %d.%03d s\n' $((cold_ms / 1000)) $((cold_ms % 1000))
printf 'incremental rebuild after touching sutazai-kit: %d.%03d s\n' $((incremental_ms / 1000)) $((incremental_ms % 1000))
printf 'cores: %s, rustc: %s, linker: %s\n' "$(nproc)" "$(rustc --version)" "${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:-default}"
