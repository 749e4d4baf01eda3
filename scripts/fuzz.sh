#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser a user reaches (fuzz/targets.rs), with cargo-fuzz
# on nightly: each target runs SECONDS (default 60) from its committed seeds (fuzz/seeds/)
# plus the corpus earlier runs grew (fuzz/corpus/, not committed). Prints executions and
# crashes per target; a crash's input is kept under fuzz/artifacts/TARGET/ — commit it to
# tests/fuzz_regressions/TARGET/ with the fix, and `cargo test --test fuzz` replays it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# Limits: one allocation over 1 GiB (-malloc_limit_mb) or a run over 4 GiB is a crash: no
# file may ask for that much; an input taking over 30 s is a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(read_weights weights read_pth pth npy cifar decode image snapshot options)
fi
# The seeds a target starts from (fuzz/seeds/DIR), as in fuzz/targets.rs.
seeds_of() {
    case $1 in
        read_weights) echo weights ;;
        read_pth) echo pth ;;
        decode) echo image ;;
        *) echo "$1" ;;
    esac
}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/resnet-fuzz-target}

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz > /dev/null; then
    cargo install cargo-fuzz --locked
fi

# -a: debug assertions on, so that an integer overflow in a size computation is a crash
# rather than a silently wrong (wrapped) size.
cargo +nightly fuzz build -a

summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    set +e
    cargo +nightly fuzz run -a "$t" "fuzz/corpus/$t" "fuzz/seeds/$(seeds_of "$t")" -- \
        -max_total_time="$seconds" -malloc_limit_mb=1024 -rss_limit_mb=4096 -timeout=30 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 > "$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [ $rc -ne 0 ]; then
        status=1
        crash=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
        cause=$(grep -m1 -E "panicked at|ERROR: libFuzzer|out-of-memory|malloc\(" "$log" || true)
        summary+=("$(printf '%-12s %12s %9s %7s   CRASH %s\n%21s%s' "$t" "$runs" "$speed" "$corpus" "$crash" "" "$cause")")
        cp "$log" "fuzz/artifacts/$t/last.log"
    else
        summary+=("$(printf '%-12s %12s %9s %7s   no crash' "$t" "$runs" "$speed" "$corpus")")
    fi
    rm -f "$log"
done

printf '\n%-12s %12s %9s %7s   %s\n' target executions "exec/s" corpus result
printf '%s\n' "${summary[@]}"
exit $status
