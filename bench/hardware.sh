#!/usr/bin/env bash
# `make bench-hardware`: one seeded tree (default 50,000 files, ~2 GB: many small files, a few
# large ones, ~10% exact copies and ~2% same-size near-copies) under /var/tmp, then our duplicate
# scan (the FindDuplicates code path, release build), `fdupes -q -r` and `rmlint -T df` on it in the same
# run, each under /usr/bin/time -v for wall time and peak memory. Prints a table with ratios and
# each tool's group count, so a faster tool that finds less shows it.
#
# Every tool runs with a warm page cache (the tree is read once before the first tool), so the
# figures compare the work each does rather than the disk; COLD=1 instead drops the page cache
# before each tool (root only; it slows everything else on the machine for a while).
#
# Knobs (environment): FILES (50000), TOTAL_MB (2048), SEED (42), COLD (0), KEEP_TREE (0: the
# tree is deleted afterwards; 1 keeps it under /var/tmp for the next run).
set -euo pipefail
cd "$(dirname "$0")/.."

files=${FILES:-50000}
total_mb=${TOTAL_MB:-2048}
seed=${SEED:-42}
cold=${COLD:-0}
keep_tree=${KEEP_TREE:-0}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sutazai-release-target}"

missing=()
command -v fdupes >/dev/null || missing+=(fdupes)
command -v rmlint >/dev/null || missing+=(rmlint)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "building dupes_bench (release)"
cargo build --quiet --release -p sutazai-hardware --example dupes_bench
ours="$CARGO_TARGET_DIR/release/examples/dupes_bench"

tree="/var/tmp/sutazai-dupes-bench-${files}-${total_mb}-${seed}"
workdir=$(mktemp -d)
cleanup() {
  rm -rf "$workdir"
  if [ "$keep_tree" != 1 ]; then rm -rf "$tree" "$tree.complete"; fi
}
trap cleanup EXIT

if [ ! -f "$tree.complete" ]; then
  rm -rf "$tree"
  echo "generating $tree"
  python3 bench/hardware/make_tree.py "$tree" "$files" "$total_mb" "$seed"
  touch "$tree.complete"
fi

prepare() {
  if [ "$cold" = 1 ]; then
    sync
    echo 3 > /proc/sys/vm/drop_caches
  fi
}
if [ "$cold" != 1 ]; then
  echo "warming the page cache"
  find "$tree" -type f -exec cat {} + > /dev/null
fi

# Wall seconds and peak RSS (KiB) from a /usr/bin/time -v report.
wall_seconds() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$1"; }
max_rss_kb() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
# Groups and redundant files in fdupes-style output (groups separated by blank lines).
groups_of() { awk 'NF { lines++; if (!in_group) { groups++; in_group = 1 } next } { in_group = 0 } END { print groups + 0 }' "$1"; }
copies_of() { awk 'NF { lines++; if (!in_group) { groups++; in_group = 1 } next } { in_group = 0 } END { print lines - groups }' "$1"; }

echo "ours: dupes_bench"
prepare
/usr/bin/time -v -o "$workdir/ours.time" "$ours" "$tree" > "$workdir/ours.json"
echo "fdupes -q -r"
prepare
/usr/bin/time -v -o "$workdir/fdupes.time" fdupes -q -r "$tree" > "$workdir/fdupes.txt"
echo "rmlint -T df (duplicate files only, fdupes-style output)"
prepare
# rmlint writes rmlint.sh and rmlint.json into the working directory unless told otherwise.
(cd "$workdir" && /usr/bin/time -v -o "$workdir/rmlint.time" rmlint -T df -o "fdupes:$workdir/rmlint.txt" "$tree" > /dev/null)

ours_json=$(cat "$workdir/ours.json")
field() { echo "$ours_json" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
ours_groups=$(field groups)
ours_copies=$(field duplicate_files)
echo "ours: $ours_json"
echo
printf "%-10s %10s %12s %8s %12s %14s %14s\n" tool seconds max_rss_mib groups dup_files "time/ours" "rss/ours"
ours_s=$(wall_seconds "$workdir/ours.time")
ours_rss=$(max_rss_kb "$workdir/ours.time")
row() {
  local name=$1 seconds=$2 rss=$3 groups=$4 copies=$5
  awk -v n="$name" -v s="$seconds" -v r="$rss" -v g="$groups" -v c="$copies" -v os="$ours_s" -v orss="$ours_rss" \
    'BEGIN { printf "%-10s %10.2f %12.1f %8d %12d %14.2f %14.2f\n", n, s, r / 1024, g, c, s / os, r / orss }'
}
row ours "$ours_s" "$ours_rss" "$ours_groups" "$ours_copies"
row fdupes "$(wall_seconds "$workdir/fdupes.time")" "$(max_rss_kb "$workdir/fdupes.time")" \
  "$(groups_of "$workdir/fdupes.txt")" "$(copies_of "$workdir/fdupes.txt")"
row rmlint "$(wall_seconds "$workdir/rmlint.time")" "$(max_rss_kb "$workdir/rmlint.time")" \
  "$(groups_of "$workdir/rmlint.txt")" "$(copies_of "$workdir/rmlint.txt")"
echo
echo "files=$files total_mb=$total_mb seed=$seed cold=$cold; time/ours and rss/ours above 1 mean the peer is slower / bigger"
