#!/usr/bin/env bash
# Installs what building the page and running the tests need, from package registries only:
# the wasm32 target, rust-src (the threaded build rebuilds std), wasm-bindgen-cli at
# Cargo.lock's wasm-bindgen version (with its test runner), the npm dev packages (binaryen's
# wasm-opt, playwright-core, vite, uPlot) and, with --browser, Debian's Chromium, chromedriver
# and lavapipe. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

# Crates with C parts (and the linker) need a C toolchain; a fresh Debian with only rustup
# has none.
if ! command -v cc >/dev/null; then
  say "installing a C toolchain (Debian's build-essential)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq build-essential pkg-config >/dev/null
fi

# Vite 8 (the bundler test) needs Node.js 20.19 or newer.
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number); console.log(a > 20 || (a === 20 && b >= 19) ? "yes" : "no")' 2>/dev/null || echo missing)
if [ "$node_ok" != yes ]; then
  echo "Node.js >= 20.19 is needed (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Install it from your distribution (Debian 13: apt-get install nodejs npm) or from nodejs.org, then run this again." >&2
  exit 1
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || {
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

# The threaded browser build rebuilds std with atomics from the toolchain's sources
# (scripts/build-web.sh).
rustup component list --installed | grep -q '^rust-src' || {
  say "adding the rust-src component"
  rustup component add rust-src
}

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  say "installing wasm-bindgen-cli $wbg_version"
  # Not --locked: the locked dependency set asks for a webpki-roots the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wbg_version"
fi

if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dev packages"
  npm ci --no-audit --no-fund
fi

# Ubuntu ships Chromium as a snap: there, point CHROMIUM and CHROMEDRIVER at its binaries
# (/snap/bin/chromium, /snap/bin/chromium.chromedriver) and nothing is installed.
have_browser() {
  if [ -n "${CHROMIUM:-}" ] && [ -n "${CHROMEDRIVER:-}" ]; then
    [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]
  else
    command -v chromium && command -v chromedriver
  fi
}
if [ "${1:-}" = "--browser" ] && ! have_browser >/dev/null; then
  say "installing Debian's chromium and chromium-driver"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# The native wgpu tests (tests/wgpu.rs) run on lavapipe, Mesa's Vulkan on the CPU, where the
# machine has no GPU; its ICD file is what the Vulkan loader finds.
if [ "${1:-}" = "--browser" ] && ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  say "installing lavapipe (Debian's mesa-vulkan-drivers) for the native wgpu tests"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
