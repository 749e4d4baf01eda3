#!/usr/bin/env python3
"""PyTorch's side of scripts/bench-native.sh: times one case the way `resnet bench` does
(same warm-up, same median, same JSON fields) and prints one JSON line.

    python3 scripts/bench_torch.py --arch resnet18 --mode infer --batch 1 --size 224

Inference is eager eval mode under torch.inference_mode() (what a PyTorch user runs);
training is forward, cross-entropy, backward and an SGD step (momentum 0.9, wd 1e-4).
Every timed batch ends with its result on the host (the logits, or the loss), as `resnet
bench` reads its result back. On a GPU (--device cuda) --precision picks strict fp32, TF32,
or AMP (bf16 autocast with channels-last tensors); cuDNN's autotuner is on in every case.
ImageNet nets are torchvision's; CIFAR nets (resnet20, 32, 44, 56, 110) are the option-A
ResNets of tests/fixtures/make_fixtures.py.
"""

import argparse
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_fixtures import CifarResNet  # noqa: E402

CIFAR = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


def model_of(arch):
    if arch in CIFAR:
        return CifarResNet(CIFAR[arch]), 32, 10
    if hasattr(torchvision.models, arch):
        return getattr(torchvision.models, arch)(), 224, 1000
    # The SE nets are timm's (`pip install timm`), in the layout this crate loads.
    import timm

    return timm.create_model(arch, pretrained=False), 224, 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--mode", choices=["infer", "train"], default="infer")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "tf32", "amp"], default="fp32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, default_size, classes = model_of(a.arch)
    size = a.size or default_size
    device = torch.device(a.device)
    x = torch.randn(a.batch, 3, size, size, device=device)
    model = model.to(device)
    cuda = a.device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        tf32 = a.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    amp = a.precision == "amp"
    if amp:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    autocast = lambda: torch.autocast(a.device, dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    times, first = [], None
    if a.mode == "infer":
        model.eval()
        with torch.inference_mode():
            for i in range(a.warmup + a.runs):
                started = time.perf_counter()
                with autocast():
                    model(x).float().cpu()
                elapsed = time.perf_counter() - started
                first = first if first is not None else elapsed
                if i >= a.warmup:
                    times.append(elapsed)
    else:
        model.train()
        sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        target = torch.arange(a.batch, device=device) % classes
        for i in range(a.warmup + a.runs):
            started = time.perf_counter()
            with autocast():
                loss = torch.nn.functional.cross_entropy(model(x), target)
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
            loss.item()
            elapsed = time.perf_counter() - started
            first = first if first is not None else elapsed
            if i >= a.warmup:
                times.append(elapsed)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "arch": a.arch, "mode": a.mode, "device": a.device, "precision": a.precision,
        "gpu": torch.cuda.get_device_name() if cuda else None, "batch": a.batch, "size": size,
        "runs": a.runs, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "ms_per_batch": round(median * 1e3, 1), "ms_min": round(times[0] * 1e3, 1),
        "first_step_ms": round(first * 1e3, 1),
        "images_per_second": round(a.batch / median, 1),
    }))


if __name__ == "__main__":
    main()
