#!/usr/bin/env bash
# Fault injection on native training runs (`resnet train`), printing what it saw:
#
#  1. kill -9 at random moments (start-up, mid-step, mid-evaluation), or the moment a
#     checkpoint is being written, for TRIALS runs (default 20), each resumed with --resume
#     until it finishes: every resume must
#     succeed and the finished run must equal an uninterrupted one bit for bit (the logits
#     its model gives, and every step's loss in metrics.jsonl);
#  2. a full disk during a checkpoint (a small tmpfs where mounting is allowed, else a file
#     size limit): a clear error naming the file, the previous checkpoint intact, and the run
#     resumable once there is room.
#
#   scripts/faults.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resnet-target}
cargo build --quiet --bin resnet
bin=$CARGO_TARGET_DIR/debug/resnet
work=$(mktemp -d)
trap 'umount "$work/full" 2>/dev/null || true; rm -rf "$work"' EXIT

# ResNet-8 on 512 Shapes images, batch 32: 16 steps per epoch. A checkpoint every 3 steps
# and an evaluation every 8 give the kills checkpoint writes and evaluations to land in.
run=(train --arch resnet8 --data shapes --train-size 512 --test-size 128 --batch-size 32
     --checkpoint-every 3 --eval-every 8 --seed 7 --no-progress)

# Each step's loss, as "step loss" lines (images/s differs from run to run; losses must not).
losses() {
    python3 -c 'import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v.get("kind") == "step": print(v["step"], repr(v["loss"]))' "$1/metrics.jsonl" | sort -n
}

start=$SECONDS
"$bin" "${run[@]}" --iterations 48 --out "$work/ref" > /dev/null 2>&1
took=$((SECONDS - start))
losses "$work/ref" > "$work/ref.losses"
# Burnpack files carry random parameter ids, so equal weights are not equal bytes: compare the
# logits the finished models give (bit for bit) and every step's loss.
logits() { "$bin" logits --weights "$1/model.bpk" --input tests/fixtures/cifar20_input.npy --output "$1/logits.npy" > /dev/null 2>&1; }
logits "$work/ref"
echo "uninterrupted run: 48 steps in ${took} s"

kills=0 mid_write=0 failures=0
for trial in $(seq 1 "$trials"); do
    out=$work/trial$trial
    rounds=0
    while :; do
        flags=()
        [ -f "$out/checkpoint.bpk" ] && flags=(--resume)
        "$bin" "${run[@]}" --iterations 48 "${flags[@]}" --out "$out" > "$work/log" 2>&1 &
        pid=$!
        if [ $rounds -ge 8 ]; then
            : # enough kills for one run: let it finish
        elif [ $((RANDOM % 2)) -eq 0 ]; then
            # A random moment, up to the whole run's length: start-up, a step, an evaluation…
            sleep "$(awk -v s="$RANDOM" -v t="$took" 'BEGIN { srand(s); print 0.2 + rand() * (t + 1) }')"
        else
            # The moment a checkpoint is being written (its temporary file exists).
            until compgen -G "$out/.checkpoint.bpk.*.tmp" > /dev/null || ! kill -0 "$pid" 2> /dev/null; do :; done
        fi
        if [ $rounds -lt 8 ] && kill -9 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            kills=$((kills + 1))
            rounds=$((rounds + 1))
            if compgen -G "$out/.checkpoint.bpk.*.tmp" > /dev/null; then
                mid_write=$((mid_write + 1))
            fi
            continue
        fi
        if ! wait "$pid"; then
            echo "trial $trial: a resume failed:"; cat "$work/log"; failures=$((failures + 1)); break
        fi
        break
    done
    if [ -f "$out/model.bpk" ] && logits "$out" && cmp -s "$work/ref/logits.npy" "$out/logits.npy" \
        && losses "$out" | cmp -s - "$work/ref.losses"; then
        echo "trial $trial: killed $rounds times, finished bit-identical"
    else
        echo "trial $trial: killed $rounds times, DIFFERS from the uninterrupted run"
        failures=$((failures + 1))
    fi
    leftovers=$(find "$out" -name '*.tmp' | wc -l)
    if [ "$leftovers" -ne 0 ]; then
        echo "trial $trial: $leftovers temporary files left behind"; failures=$((failures + 1))
    fi
done
echo "kill -9: $trials runs, $kills kills ($mid_write during a checkpoint write), $failures failures"

# A full disk during a checkpoint.
full=$work/full
mkdir -p "$full"
"$bin" "${run[@]}" --iterations 6 --out "$work/small" > /dev/null 2>&1
size=$(stat -c %s "$work/small/checkpoint.bpk")
if mount -t tmpfs -o size=$((size * 3 / 1024 + 64))k tmpfs "$full" 2> /dev/null; then
    how="a $((size * 3 / 1024 + 64)) kB tmpfs filled up to half a checkpoint"
    cp -r "$work/small" "$full/run"
    # Fill the disk so that the next checkpoint cannot be written beside the current one.
    free=$(df --output=avail -B1 "$full" | tail -1)
    head -c $((free - size / 2)) /dev/zero > "$full/filler"
    limit=()
else
    how="a file size limit of half a checkpoint (not allowed to mount a tmpfs here)"
    cp -r "$work/small" "$full/run"
    limit=(ulimit -f $((size / 2 / 512)))
fi
before=$(sha256sum "$full/run/checkpoint.bpk")
set +e
if [ ${#limit[@]} -gt 0 ]; then
    (trap '' XFSZ; "${limit[@]}"; exec "$bin" "${run[@]}" --iterations 12 --resume --out "$full/run") > "$work/full.log" 2>&1
else
    "$bin" "${run[@]}" --iterations 12 --resume --out "$full/run" > "$work/full.log" 2>&1
fi
rc=$?
set -e
after=$(sha256sum "$full/run/checkpoint.bpk")
echo "full disk ($how): exit $rc: $(grep -i -m1 'error' "$work/full.log" || tail -1 "$work/full.log")"
if [ $rc -eq 0 ] || [ "$before" != "$after" ]; then
    echo "full disk: the run did not fail cleanly or the previous checkpoint changed"; failures=$((failures + 1))
fi
rm -f "$full/filler"
if "$bin" "${run[@]}" --iterations 12 --resume --out "$full/run" > "$work/full.log" 2>&1; then
    echo "full disk: with room again the run resumed from its last checkpoint and finished"
else
    echo "full disk: the run could not resume:"; cat "$work/full.log"; failures=$((failures + 1))
fi
if [ "$(find "$full/run" -name '*.tmp' | wc -l)" -ne 0 ]; then
    echo "full disk: a temporary file was left behind"; failures=$((failures + 1))
fi

[ $failures -eq 0 ] && echo "faults: all passed" || { echo "faults: $failures failures"; exit 1; }
