"""Whose receptive field is right on the zoo's conv calls: the explorer's follower
(`explorer.probe.receptive_fields`) or the summary's trace (per-axis Fields in its tags)?

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/explorer_fields.py \
        --side 256 ghostnet monai-basicunet hf-cvt

Each family's small model (tests/test_summary_zoo.py `make`), on a side × side image where
the model takes any size (its own size else): a wide image so that fewer fields are clipped
to the whole image, where every method is right. Per conv call, three units (the centre,
the top-left and the bottom-right one) and all channels at once (a field is one box for all
of a unit's channels): truth is the input pixels whose gradient is non-zero, the union of a
run with positive weights on a ones image (nothing cancels) and one with the seeded weights
on four random images, both in float64. Dead zones would hide pixels, so the runs are
structural (`Structural`): ReLU-like and clamping functions pass their input on, max pools
average; instance and group norm pass too, as neither method counts a norm's statistics.
Each method's box (`unit_box`'s formula) and the truth's span are clipped to the image and
compared per edge: a family's line counts the boxes with every edge exact, and those
closer to the truth than the other method's.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import cnnlab  # noqa: E402
from cnnlab.design.summary import trace as T  # noqa: E402
from cnnlab.design.summary.render import call_label  # noqa: E402
from cnnlab.design.summary.tags import TAG, first_tensor  # noqa: E402
from cnnlab.explorer.probe import receptive_fields  # noqa: E402
from test_summary_zoo import make  # noqa: E402

FIXED = {"hf-levit", "hf-pvt", "monai-unetr", "monai-var-autoencoder", "monai-autoencoder",
         "monai-classifier"}  # fmt: skip
PASS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "hardsigmoid", "hardswish",
        "leaky_relu", "leaky_relu_", "elu", "threshold", "threshold_", "clamp", "clamp_",
        "clip", "clamp_min", "clamp_max", "clamp_min_", "clamp_max_", "instance_norm",
        "group_norm"}  # fmt: skip
MAX_POOLS = {"max_pool2d", "_max_pool2d"}


class Structural(TorchFunctionMode):
    """Dependence only: a flat piece of an activation (ReLU's zeros, ReLU6's six) would zero a
    gradient that a pixel does carry, a max pool's would reach one pixel of its window."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in PASS and args and isinstance(args[0], torch.Tensor):
            return args[0]
        if name in MAX_POOLS and not kwargs.get("return_indices"):
            a = [*args, None, None, None, None, None][:6]
            kernel, stride = kwargs.get("kernel_size", a[1]), kwargs.get("stride", a[2])
            padding = kwargs.get("padding", a[3] or 0)
            dilation, ceil = kwargs.get("dilation", a[4] or 1), kwargs.get("ceil_mode", a[5])
            if dilation in (1, (1, 1)):
                return F.avg_pool2d(a[0], kernel, stride or None, padding, bool(ceil))
        return func(*args, **kwargs)


def summary_fields(model: nn.Module, size: tuple) -> dict:
    """Each row's (height, width) Fields, as the trace's tag held them (the row keeps one)."""
    got, row = {}, T.Tracer._row

    def kept(self, module, name, kind, params, trainable, rule, leaf, output):
        n = len(self.rows)
        row(self, module, name, kind, params, trainable, rule, leaf, output)
        if len(self.rows) > n:
            out = output if type(output) is torch.Tensor else first_tensor(output)
            tag = getattr(out, TAG, None)
            got[call_label(self.rows[-1].name, self.rows[-1].call)] = tag and tag.rf

    T.Tracer._row = kept
    try:
        cnnlab.summary(model, size)
    finally:
        T.Tracer._row = row
    return got


def seen(model: nn.Module, x: torch.Tensor, positive: bool) -> dict:
    """{(call, unit): (i, j, rows, cols)}: input rows and columns any channel of unit (i, j)
    of each conv call's output depends on."""
    m = copy.deepcopy(model).eval().double()
    if positive:
        for p in m.parameters():
            p.data.uniform_(0.1, 1.0)
    outs, calls = {}, Counter()

    def hook(name):
        def fn(mod, args, y):
            calls[name] += 1
            if isinstance(y, torch.Tensor) and y.dim() == 4:
                outs[call_label(name, calls[name])] = y

        return fn

    for n, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_hook(hook(n))
    x = x.double().requires_grad_(True)
    with Structural():
        m(x)
        found = {}
        for call, y in outs.items():
            h, w = y.shape[2:]
            for u, (i, j) in enumerate([(h // 2, w // 2), (0, 0), (h - 1, w - 1)]):
                unit = y[:, :, i, j].sum()
                (g,) = torch.autograd.grad(unit, x, retain_graph=True, allow_unused=True)
                g = torch.zeros_like(x) if g is None else g
                g = g.abs().sum((0, 1))
                rows, cols = torch.nonzero(g.sum(1)).flatten(), torch.nonzero(g.sum(0)).flatten()
                found[call, u] = (i, j, set(rows.tolist()), set(cols.tolist()))
    return found


def span(pixels: set) -> tuple[int, int] | None:
    return (min(pixels), max(pixels)) if pixels else None


def box(field, k: int, n: int) -> tuple[int, int] | None:
    """Pixels of unit k's field along one axis (size, jump, start), clipped to 0 .. n - 1."""
    size, jump, start = field.size, field.jump, field.start
    low = start + k * jump - (size - 1) / 2
    a, b = max(0, round(low)), min(n - 1, round(low + size - 1))
    return (a, b) if a <= b else None


def error(got, truth) -> float:
    """The largest distance of an edge of `got` from the truth's (inf: no box, or no truth)."""
    if got is None or None in got or None in truth:
        return float("inf")
    return max(abs(got[a][k] - truth[a][k]) for a in (0, 1) for k in (0, 1))


def measure(name: str, side: int) -> list[tuple[float, float]]:
    """(explorer's error, summary's) per conv call and unit."""
    torch.manual_seed(0)
    model, size = make(name)
    model.eval()
    size = size if name in FIXED or not side else (size[0], side, side)
    explorer = receptive_fields(model, torch.zeros(1, *size))
    summary = summary_fields(model, size)
    torch.manual_seed(1)
    ones = seen(model, torch.ones(1, *size), True)
    random = seen(model, torch.randn(4, *size), False)
    errors = []
    for (call, u), (i, j, rows, cols) in ones.items():
        truth = (span(rows | random[call, u][2]), span(cols | random[call, u][3]))
        boxes = []
        for rf in (explorer.get(call), summary.get(call)):
            got = None if rf is None else (box(rf[0], i, size[1]), box(rf[1], j, size[2]))
            boxes.append(error(got, truth))
        errors.append(tuple(boxes))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("families", nargs="+")
    parser.add_argument("--side", type=int, default=256, help="image side (0: the family's)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print("family                     boxes  exact: explorer summary  closer: explorer summary")
    for name in args.families:
        errors = measure(name, args.side)
        exact = [sum(e[k] == 0 for e in errors) for k in (0, 1)]
        closer = sum(e < s for e, s in errors), sum(s < e for e, s in errors)
        counts = f"{exact[0]:16d} {exact[1]:7d} {closer[0]:16d} {closer[1]:7d}"
        print(f"{name:26s} {len(errors):5d} {counts}")


if __name__ == "__main__":
    main()
