#!/usr/bin/env bash
# Builds the npm package into pkg/ (ES module + TypeScript types + package.json): a release
# wasm32 build of the library as a cdylib, wasm-bindgen's JS glue, then npm binaryen's
# wasm-opt -Oz. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
# The same build directory as scripts/test.sh, so serving after testing (or the reverse)
# rebuilds nothing.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}

# Size matters more than CPU speed for the page (the model runs on WebGPU), so the wasm
# release build uses opt-level "z", fat LTO and one codegen unit, without touching the
# native release profile.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# Not stripped here: wasm-bindgen reads the target_features section; wasm-opt strips below.
export CARGO_PROFILE_RELEASE_STRIP=false
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_PANIC=abort

# What wasm-pack would do, without installing it (3 min of CI's setup): Cargo.toml builds only
# the rlib, so the cdylib is asked for here.
cargo rustc --lib --release --target wasm32-unknown-unknown --crate-type cdylib
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name resnet \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/resnet.wasm"
cp README.md LICENSE pkg/

wasm=pkg/resnet_bg.wasm
raw=$(stat -c %s "$wasm")
# The features rustc's wasm32 target enables (SIMD is used by some dependencies' kernels;
# every browser with WebGPU has it).
wasm_features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd)
# One -Oz pass: --converge (repeating it until the module stops shrinking) saved 3.2 KB
# gzipped for 4.5 more minutes of CI on 2026-12-02 (12 KB on 2026-11-29).
node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers "${wasm_features[@]}" \
  "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"

# The threaded CPU build (pkg/threads/; Cargo.toml says what is in it): rayon's pool on Web
# Workers sharing one memory, which the page's worker loads where the CPU runs and the page is
# cross-origin isolated. std must be rebuilt with atomics (`-Z build-std`, unstable): on the
# project's stable toolchain with RUSTC_BOOTSTRAP=1 and its rust-src, rather than a nightly
# (one less toolchain to download and no nightly breakage; scripts/setup.sh adds rust-src).
# Its own target directory: the flags differ from every other build's. opt-level 3 (not "z"):
# this file exists to be fast, and is not part of the first load's budget.
threads_target="$CARGO_TARGET_DIR/threads"
# A shared, imported memory (up to 4 GiB) and the thread-local storage symbols wasm-bindgen
# initialises each worker's TLS with: rustc no longer passes these to wasm-ld by itself.
threads_link=$(printf -- '-C link-arg=%s ' --shared-memory --import-memory --max-memory=4294967296 \
  --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base)
RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals $threads_link" \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
  cargo rustc --lib --release --target wasm32-unknown-unknown --crate-type cdylib \
  --target-dir "$threads_target" -Z build-std=panic_abort,std
rm -rf pkg/threads
wasm-bindgen --target web --out-dir pkg/threads --out-name resnet \
  "$threads_target/wasm32-unknown-unknown/release/resnet.wasm"
node_modules/.bin/wasm-opt -O3 --strip-debug --strip-producers "${wasm_features[@]}" \
  --enable-threads pkg/threads/resnet_bg.wasm -o pkg/threads/resnet_bg.wasm.opt
mv pkg/threads/resnet_bg.wasm.opt pkg/threads/resnet_bg.wasm
threads_gz=$(gzip -9 -c pkg/threads/resnet_bg.wasm | wc -c)
echo "pkg/threads/resnet_bg.wasm (the threaded CPU build, loaded only where it runs): $(stat -c %s pkg/threads/resnet_bg.wasm) bytes, $threads_gz gzipped"

node scripts/package-json.mjs pkg/package.json

opt=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
awk -v raw="$raw" -v opt="$opt" -v gz="$gz" 'BEGIN {
  printf "pkg/resnet_bg.wasm: %.1f MB before wasm-opt, %.1f MB after, %.2f MB gzipped\n", raw/1e6, opt/1e6, gz/1e6 }'

# The budget of what the page loads first (issue 12; README, "Sizes and benchmarks"): a build
# over it fails here, so CI does not let it land.
budget=3000000
if [ "$gz" -gt "$budget" ]; then
  echo "build-web: pkg/resnet_bg.wasm is $gz bytes gzipped, over the $budget-byte budget of what the page loads first" >&2
  exit 1
fi
echo "pkg/resnet_bg.wasm: $gz bytes gzipped, $((budget - gz)) under the $budget-byte budget"
