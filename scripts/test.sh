#!/usr/bin/env bash
# Runs the whole test suite once: a debug build, then every test (unit and integration)
# in one nextest pass. CI calls exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "the tests need a Rust toolchain (cargo); install it with rustup: https://rustup.rs" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest..." >&2
  cargo install --locked cargo-nextest
fi

cargo nextest run --workspace --locked --profile ci "$@"
