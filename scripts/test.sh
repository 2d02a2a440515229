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
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest..." >&2
  cargo install --locked cargo-nextest
fi

cargo nextest run --workspace --locked --profile ci "$@"
