#!/usr/bin/env bash
# This crate (flex CPU backend, release build) beside PyTorch on the CPU, case by case in one
# run, with the same thread count; prints a Markdown table of milliseconds per batch and the
# ratio PyTorch ms / our ms (above 1: we are faster). A benchmark, not a test.
#
#   scripts/bench-native.sh [--quick | --family] [THREADS]
#
# --quick runs the first two cases; --family only the ResNet successors (ResNeXt, Wide ResNet,
# SE-ResNet; the last needs `pip install timm` in the PyTorch environment).
#
# PyTorch comes from $TORCH_PYTHON, else ~/.cache/resnet-torch-venv (created with `pip
# install torch torchvision` from PyPI when missing: ~3 GB, PyPI's Linux wheel carries CUDA
# libraries), else python3 if it has torch.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
family=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ "${1:-}" = "--family" ]; then family=1; shift; fi
threads=${1:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}

venv=$HOME/.cache/resnet-torch-venv
python=${TORCH_PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, torchvision" 2> /dev/null; then
        python=$venv/bin/python
    elif python3 -c "import torch, torchvision" 2> /dev/null; then
        python=python3
    else
        echo "bench-native: installing torch and torchvision from PyPI into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet torch torchvision
        python=$venv/bin/python
    fi
fi

cargo build --release --quiet --bin resnet
resnet=$CARGO_TARGET_DIR/release/resnet

# arch mode batch warmup runs
cases=(
    "resnet20 infer 1 3 11"
    "resnet18 infer 1 2 5"
    "resnet50 infer 1 2 5"
    "resnet18 infer 16 1 3"
    "resnet50 infer 16 1 3"
    "resnet20 train 128 1 3"
    "resnet18 train 16 1 3"
)
successors=(
    "resnext50_32x4d infer 1 2 5"
    "wide_resnet50_2 infer 1 2 5"
    "seresnet50 infer 1 2 5"
)
if [ $quick = 1 ]; then cases=("${cases[@]:0:2}"); fi
if [ $family = 1 ]; then cases=("${successors[@]}"); fi

field() { grep -o "\"$1\": *[0-9.]*" | grep -o '[0-9.]*$'; }
echo "# $(date -u +%F) · $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)) · $threads threads · $("$python" -c 'import torch; print("PyTorch", torch.__version__)')"
echo
echo "| case | this crate (flex), ms | PyTorch, ms | ratio |"
echo "|---|---:|---:|---:|"
for c in "${cases[@]}"; do
    read -r arch mode batch warmup runs <<< "$c"
    ours=$(RAYON_NUM_THREADS=$threads "$resnet" bench --arch "$arch" --mode "$mode" --batch "$batch" \
        --warmup "$warmup" --runs "$runs" | field ms_per_batch)
    theirs=$("$python" scripts/bench_torch.py --arch "$arch" --mode "$mode" --batch "$batch" \
        --warmup "$warmup" --runs "$runs" --threads "$threads" | field ms_per_batch)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f×", b / a }')
    echo "| $arch $mode, batch $batch | $ours | $theirs | $ratio |"
done
