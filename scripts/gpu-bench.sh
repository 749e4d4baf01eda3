#!/usr/bin/env bash
# This crate on a GPU (wgpu pinned to Vulkan) beside PyTorch (CUDA: strict fp32, TF32, and AMP
# = bf16 autocast + channels-last) on the same GPU, case by case in one run, with the same
# timing rule (warm-up batches untimed, median of the timed ones, each batch's result read back
# to the host); then the streaming loader's images per second on every core. Prints the JSON
# lines and a Markdown table with the ratios ours / PyTorch. A benchmark, not a test.
#
#   scripts/gpu-bench.sh          # on the GPU machine: RESNET_BIN (default target/release/resnet,
#                                 # built with --features vulkan,fusion) and TORCH_PYTHON (python3)
#   scripts/gpu-bench.sh --cpu    # the same plumbing on the CPU with small cases (no GPU needed)
#
# Each case has a time limit (CASE_SECONDS, 150): a case that does not finish is reported as
# such, not waited for. The whole script is sized to fit in 8 minutes on an H200.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${RESNET_BIN:-target/release/resnet}
python=${TORCH_PYTHON:-python3}
limit=${CASE_SECONDS:-150}
if [ "${1:-}" = "--cpu" ]; then
    ours_device=flex torch_device=cpu precisions="fp32"
    cases=("resnet20 train 16" "resnet18 infer 1")
    amp_cases=("resnet20 train 16")
    loader_images=64
else
    ours_device=vulkan:0 torch_device=cuda precisions="fp32 tf32 amp"
    cases=("resnet50 train 128" "resnet50 train 32" "resnet50 infer 256" "resnet50 infer 1" "resnet20 train 128")
    # Ours with the convolutions in f16 (--amp f16; refused where the GPU has no f16 matrix
    # units), beside PyTorch's AMP: two cases, to stay inside the 8 minutes.
    amp_cases=("resnet50 train 32" "resnet50 infer 256")
    loader_images=1024
fi
out=$(mktemp -d)
lines=$out/lines.jsonl
for case in "${cases[@]}"; do
    read -r arch mode batch <<< "$case"
    echo "== $arch $mode batch $batch" >&2
    if line=$(timeout "$limit" "$bin" bench --arch "$arch" --mode "$mode" --batch "$batch" \
        --device "$ours_device" --warmup 2 --runs 5); then
        echo "{\"who\":\"ours\",\"case\":\"$case\",\"r\":$line}" >> "$lines"
    else
        echo "{\"who\":\"ours\",\"case\":\"$case\",\"r\":null}" >> "$lines"
    fi
    if [[ " ${amp_cases[*]} " == *" $case "* ]]; then
        if line=$(timeout "$limit" "$bin" bench --arch "$arch" --mode "$mode" --batch "$batch" \
            --device "$ours_device" --warmup 2 --runs 5 --amp f16); then
            echo "{\"who\":\"ours-f16\",\"case\":\"$case\",\"r\":$line}" >> "$lines"
        else
            echo "{\"who\":\"ours-f16\",\"case\":\"$case\",\"r\":null}" >> "$lines"
        fi
    fi
    for p in $precisions; do
        if line=$(timeout "$limit" "$python" scripts/bench_torch.py --arch "$arch" --mode "$mode" \
            --batch "$batch" --device "$torch_device" --precision "$p" --warmup 2 --runs 5); then
            echo "{\"who\":\"torch-$p\",\"case\":\"$case\",\"r\":$line}" >> "$lines"
        else
            echo "{\"who\":\"torch-$p\",\"case\":\"$case\",\"r\":null}" >> "$lines"
        fi
    done
done
# The first case again in a new process: its first step now finds the compiled kernels and
# autotune results the first run persisted (`kernel_cache` in the line says where).
read -r arch mode batch <<< "${cases[0]}"
echo "== $arch $mode batch $batch, second process" >&2
if line=$(timeout "$limit" "$bin" bench --arch "$arch" --mode "$mode" --batch "$batch" \
    --device "$ours_device" --warmup 2 --runs 5); then
    echo "{\"who\":\"ours\",\"case\":\"${cases[0]} (second process)\",\"r\":$line}" >> "$lines"
fi
# ImageNet-sized JPEGs (500x375, smooth content with noise) for the loader.
"$python" - "$out/jpegs" "$loader_images" << 'PY'
import os, sys
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
wnids = ["n01440764", "n01443537", "n01484850", "n01491361"]
for split, count in [("train", n // 4), ("val", 2)]:
    for w in wnids:
        os.makedirs(f"{root}/{split}/{w}", exist_ok=True)
        for i in range(count):
            W, H = (500, 375) if i % 3 else (375, 500)
            small = rng.integers(0, 255, (H // 8, W // 8, 3), dtype=np.uint8)
            im = np.asarray(Image.fromarray(small).resize((W, H), Image.BICUBIC)).astype(np.int16)
            im = (im + rng.integers(-12, 12, (H, W, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(im).save(f"{root}/{split}/{w}/{w}_{i}.JPEG", quality=90)
PY
if line=$(timeout "$limit" "$bin" data bench --data "imagenet:$out/jpegs" --batch 256 --batches 3); then
    echo "{\"who\":\"loader\",\"case\":\"loader\",\"r\":$line}" >> "$lines"
fi
cat "$lines"
"$python" - "$lines" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cases = list(dict.fromkeys(r["case"] for r in rows if r["who"] != "loader"))
whos = list(dict.fromkeys(r["who"] for r in rows if r["who"] != "loader"))
gpu = next((r["r"].get("gpu") for r in rows if r["r"] and r["r"].get("gpu")), "no GPU")
torch = [w for w in whos if w.startswith("torch")]
pairs = [("ours", w) for w in torch] + ([("ours-f16", "torch-amp" if "torch-amp" in whos else torch[0])] if "ours-f16" in whos else [])
print(f"\n{gpu}: images per second (first step in ms); ratio = ours / PyTorch\n")
print("| case | " + " | ".join(whos) + " | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
print("|---|" + "---:|" * (len(whos) + len(pairs)))
for case in cases:
    got = {r["who"]: r["r"] for r in rows if r["case"] == case}
    ips = {w: (got.get(w) or {}).get("images_per_second") for w in whos}
    cells = [f"{ips[w]:,.1f} ({got[w].get('first_step_ms', 0):,.0f})" if ips[w]
             else "did not finish" if w in got else "-" for w in whos]
    ratios = [f"{ips[a] / ips[b]:.2f}x" if ips.get(a) and ips.get(b) else "-" for a, b in pairs]
    print(f"| {case} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
for r in rows:
    if r["who"] == "ours-f16" and r["r"] and r["r"].get("amp_gradient_error") is not None:
        print(f"{r['case']}: f16 weight gradients off by at most {r['r']['amp_gradient_error']:.1%} of each layer's largest")
cache = next((r["r"].get("kernel_cache") for r in rows if r["r"] and r["r"].get("kernel_cache")), None)
print(f"\nkernel and autotune cache: {cache}")
for r in rows:
    if r["who"] == "loader":
        l = r["r"]
        print(f"\nloader: {l['imagesPerSecondAllThreads']:,.0f} img/s on {l['threads']} threads, "
              f"{l['imagesPerSecondOneThread']:,.0f} on one ({l['augmentation']}, {l['size']} crops)")
PY
