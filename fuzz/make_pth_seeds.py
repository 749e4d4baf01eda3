"""Writes fuzz/seeds/pth/seed-*: tiny PyTorch state dicts in torch.save's zip layout (and
the legacy pickle-only one), made with the standard library only, so that no torch install
is needed. A stand-in `torch` module gives the pickle the exact globals torch writes
(torch._utils._rebuild_tensor_v2, torch.FloatStorage, collections.OrderedDict) and the
persistent ids of its storages ('storage', FloatStorage, key, 'cpu', numel).

python3 fuzz/make_pth_seeds.py
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called: only pickled")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for dim in reversed(self.shape):
            stride.insert(0, acc)
            acc *= dim
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None


def state(nested):
    tensors, storages = collections.OrderedDict(), []
    for i, (name, shape) in enumerate([("fc.weight", [3, 4]), ("fc.bias", [3]), ("bn1.running_var", [2])]):
        n = 1
        for d in shape:
            n *= d
        storage = Storage(str(i), [0.25 * k for k in range(n)])
        storages.append(storage)
        tensors[name] = Tensor(storage, shape)
    return ({"state_dict": tensors, "epoch": 3} if nested else tensors), storages


out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "pth")
os.makedirs(out_dir, exist_ok=True)
for name, nested in [("state_dict", False), ("checkpoint", True)]:
    obj, storages = state(nested)
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    path = os.path.join(out_dir, f"seed-{name}.pth")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for s in storages:
            z.writestr(f"archive/data/{s.key}", struct.pack(f"<{len(s.values)}f", *s.values))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")
    print(path, os.path.getsize(path), "bytes")
