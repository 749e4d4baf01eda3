#!/usr/bin/env python3
"""ONNX files of the nets scripts/bench-web.mjs times, for ONNX Runtime Web beside this crate:
ResNet-20 (the option-A CIFAR net of tests/fixtures/make_fixtures.py, 32x32) and
torchvision's ResNet-18 and ResNet-50 (224x224), in eval mode, batch 1, opset 17.

    python3 scripts/export_onnx.py OUT_DIR

Weights are seeded random ones: both engines run the same architecture, and a weight's value
does not change its time. ONNX Runtime folds each BN into its convolution at load, as this
crate's `Classifier` does.
"""

import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_fixtures import CifarResNet  # noqa: E402

NETS = {
    "resnet20": (lambda: CifarResNet(3), 32),
    "resnet18": (torchvision.models.resnet18, 224),
    "resnet50": (torchvision.models.resnet50, 224),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for name, (make, size) in NETS.items():
        path = os.path.join(out, f"{name}.onnx")
        if os.path.exists(path):
            continue
        model = make().eval()
        x = torch.randn(1, 3, size, size)
        # The TorchScript exporter: one self-contained file, no onnxscript needed.
        torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamo=False)
        print(f"export_onnx: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
