#!/usr/bin/env bash
# GPU kernel dispatches per forward (or training step) of a net on native wgpu, by kind: the
# same burn kernels the page runs on WebGPU (without fusion). CubeCL's profiling logger at its
# "minimal" level writes one line per kernel executed; two runs of `resnet bench` (1 and 3
# timed batches, no warm-up) differ by exactly two batches, so setup kernels cancel out.
#
#   scripts/count-dispatches.sh [ARCH] [infer|train] [BATCH] [DEVICE]   # resnet20 infer 1 vulkan
#
# Needs a built `resnet` (RESNET_BIN, default $CARGO_TARGET_DIR/debug/resnet) and a Vulkan
# driver (lavapipe on a machine without a GPU: scripts/setup.sh --browser).
set -euo pipefail
arch=${1:-resnet20} mode=${2:-infer} batch=${3:-1} device=${4:-vulkan}
bin=${RESNET_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}/debug/resnet}
bin=$(realpath "$bin")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# A cubecl.toml in the working directory is read by CubeCL (and leaves the CLI's own
# configuration out, src/cli/kernel_cache.rs).
cat > "$dir/cubecl.toml" << EOF
[profiling.logger]
level = "minimal"
file = "$dir/kernels.log"
append = false
EOF
count() {
    rm -f "$dir/kernels.log"
    (cd "$dir" && XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} "$bin" bench --arch "$arch" \
        --mode "$mode" --batch "$batch" --device "$device" --warmup 0 --runs "$1" > /dev/null)
    wc -l < "$dir/kernels.log"
}
one=$(count 1)
three=$(count 3)
per=$(( (three - one) / 2 ))
echo "$arch $mode batch $batch on $device: $per kernel dispatches per batch"
# The last batch's kernels by kind (the hash suffix of each kernel name dropped).
tail -n "$per" "$dir/kernels.log" | sed 's/^Executing //; s/_[0-9a-f]*$//' | cut -c1-60 \
    | sort | uniq -c | sort -rn
