#!/usr/bin/env bash
# Runs every test of the project, installing what it needs first:
#  1. native: unit tests, the PyTorch parity fixtures, weights I/O, the CLI, training (flex CPU);
#  2. the wasm package in real headless Chromium, on WebGPU and on the CPU fallback;
#  3. the npm package build, the page end to end (Classify and Train views, Playwright on
#     Debian's Chromium), and a Vite app that imports the package.
# Screenshots and logs land in test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
started=$SECONDS
# Each step says when it starts, so a CI log shows where the time went.
step() { printf '\n\033[1;34m==> %s\033[0m (at %d min %d s)\n' "$*" $(( (SECONDS - started) / 60 )) $(( (SECONDS - started) % 60 )); }

step "tools"
scripts/setup.sh --browser

step "native tests (cargo test)"
cargo test --no-fail-fast

step "wasm tests in headless Chromium: WebGPU and CPU (wasm-bindgen-test-runner)"
# The browser suite (tests/web.rs, in Chromium through chromedriver, with webdriver.json's
# flags) and the library's wasm unit tests (in Node.js: the SIMD128 kernels' hand-computed
# cases, which `wasm-pack test --chrome` skipped as node-only), run by cargo through
# wasm-bindgen's runner: one build of the crate rather than wasm-pack's two, and none of the
# native-only test targets. Dependencies are optimised (profile.dev.package."*");
# debug info is not needed in the browser. The suite trains nets on a software GPU: about
# 5 min on 2026-12-02, 1,339 s seen on 2026-11-28 (2 cores), so the limit leaves room; the
# runner's default is 20 s.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)} \
  WASM_BINDGEN_TEST_TIMEOUT=2700 CARGO_PROFILE_DEV_DEBUG=0 \
  cargo test --target wasm32-unknown-unknown --no-fail-fast --lib --test web

step "npm package (scripts/build-web.sh)"
scripts/build-web.sh

step "page end to end, Train view, saved-session faults, bundler consumer (Playwright, Vite)"
mkdir -p test-artifacts
node tests/e2e/page.mjs "$CARGO_TARGET_DIR/debug/resnet"
# The Train view; its export is evaluated by the native binary `cargo test` built above.
node tests/e2e/train.mjs "$CARGO_TARGET_DIR/debug/resnet"
# Saved sessions under faults: two tabs, a tab closed mid-save, damaged records (under a minute).
node tests/e2e/faults.mjs
node tests/e2e/bundler.mjs

step "all tests passed in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
