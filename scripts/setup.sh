#!/usr/bin/env bash
# Installs what building the page and running the tests need, from package registries only:
# the wasm32 target, wasm-bindgen-cli at Cargo.lock's wasm-bindgen version, wasm-pack, the npm
# dev packages (binaryen's wasm-opt, playwright-core, vite, uPlot) and, with --browser,
# Debian's Chromium and chromedriver. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || {
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  say "installing wasm-bindgen-cli $wbg_version"
  # Not --locked: the locked dependency set asks for a webpki-roots the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wbg_version"
fi
command -v wasm-pack >/dev/null || {
  say "installing wasm-pack"
  cargo install wasm-pack --locked
}

if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dev packages"
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = "--browser" ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  say "installing Debian's chromium and chromium-driver"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
