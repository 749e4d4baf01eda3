#!/usr/bin/env bash
# Native memory soaks: resident memory (RSS, from /proc) sampled through
#  1. `resnet train` for STEPS steps (default 5,000) of ResNet-8 on Shapes (batch 8, so that
#     the soak takes minutes on 2 cores; memory per step is what must not grow), checkpointing
#     and evaluating as a long run does;
#  2. `resnet classify` over IMAGES images (default 1,000) in one process, 10-crop views.
# After warm-up (the first 10% of the samples) memory must stay flat: the median of the last
# 10% of samples may exceed the median of the 10–20% window by at most 10% (+ 16 MB of
# allocator slack). Prints the figures; exits non-zero if one grew.
#
#   scripts/soak.sh [STEPS] [IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5000}
images=${2:-1000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}
cargo build --quiet --bin resnet
bin=$CARGO_TARGET_DIR/debug/resnet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs a command, sampling its RSS (kB) every 0.2 s into $work/$1.rss; then judges it.
soak() {
    local name=$1
    shift
    local start=$SECONDS
    "$@" > "$work/$name.log" 2>&1 &
    local pid=$!
    : > "$work/$name.rss"
    while kill -0 "$pid" 2> /dev/null; do
        awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" >> "$work/$name.rss" 2> /dev/null || true
        sleep 0.2
    done
    if ! wait "$pid"; then
        echo "$name: the command failed:"; tail -5 "$work/$name.log"; return 1
    fi
    python3 - "$name" "$work/$name.rss" "$((SECONDS - start))" <<'EOF'
import statistics, sys
name, path, took = sys.argv[1], sys.argv[2], sys.argv[3]
rss = [int(x) / 1024 for x in open(path).read().split()]
n = len(rss)
if n < 20:
    sys.exit(f"{name}: only {n} samples in {took} s: too short to judge")
warm = statistics.median(rss[n // 10 : n // 5])
end = statistics.median(rss[-(n // 10):])
grew = end - warm
ok = end <= warm * 1.10 + 16
print(f"{name}: {took} s, {n} samples; RSS after warm-up {warm:.0f} MB, at the end {end:.0f} MB "
      f"({grew:+.0f} MB), peak {max(rss):.0f} MB: {'flat' if ok else 'GREW'}")
sys.exit(0 if ok else 1)
EOF
}

status=0
soak train "$bin" train --arch resnet8 --data shapes --train-size 4096 --test-size 512 \
    --batch-size 8 --iterations "$steps" --eval-every 500 --checkpoint-every 250 --seed 1 \
    --no-progress --out "$work/run" || status=1

"$bin" data samples --to "$work/images" --count "$images" > /dev/null
soak classify "$bin" classify --weights www/models/resnet20-shapes.bpk --views ten-crop --json \
    "$work"/images/*.png || status=1
classified=$(grep -c '^{' "$work/classify.log" || true)
if [ "$classified" -ne "$images" ]; then
    echo "classify: $classified of $images images classified"; status=1
fi

exit $status
