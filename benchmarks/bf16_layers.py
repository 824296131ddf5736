"""bf16 autocast against fp32 per model family, with and without the layers that are slow in
bf16 kept in fp32 (src/cnnlab/train/fp32_layers.py); with --layers, single convolutions.

One training step as the trainer takes it (channels-last, batch 128, 3×32×32, SGD-Nesterov,
bf16 autocast around an fp32 model), for small models of the test zoo
(tests/test_summary_zoo.py) and cnnlab's `fast` preset (1×28×28). In one process, the three
ways alternated step by step so load from other processes falls on all alike; prints the
median img/s of each and the share of the bf16 step spent in `convolution_backward`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_layers.py --steps 6 ghostnet fast
    ONEDNN_VERBOSE=1 ...  # shows the oneDNN kernel each convolution runs on

--layers: one layer's forward and backward (input and weight gradients), batch 64,
channels-last where the input is 4-d, three ways alternated round by round: fp32; bf16
autocast on a bf16 input (the layer as a bf16 model runs it); and the same with the layer
kept in fp32 (`keep_fp32`, casts included). Prints a Markdown row per layer: median and
min-max ms of each way and the median of the per-round ratios (bf16 over kept, bf16 over
fp32), so load from other processes falls on the three alike.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_layers.py --layers --steps 9
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cnnlab  # noqa: E402
from cnnlab.train.fp32_layers import fp32_layers, keep_fp32  # noqa: E402


def model_and_input(name: str, batch: int):
    """(model in train mode, channels-last; x (B, C, H, W); y (B,)) for a zoo family or `fast`."""
    torch.manual_seed(0)
    if name == "fast":
        model, shape = cnnlab.build("fast"), (1, 28, 28)
    else:
        from test_summary_zoo import make

        model, _ = make(name)
        shape = (3, 32, 32)
    model = model.train().to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        classes = logits_of(model(x[:2])).shape[1]
    return model, x, torch.randint(0, classes, (batch,))


def logits_of(out) -> torch.Tensor:
    """(B, classes) from a model's output (Hugging Face models return an object)."""
    out = out if torch.is_tensor(out) else getattr(out, "logits", None)
    return out.float().flatten(1)


def stepper(model, x, y, amp: bool):
    """One SGD step of `model` on (x, y); returns the seconds it took."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(logits_of(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def conv_backward_share(step) -> float:
    """Share of one step's CPU time in aten::convolution_backward (torch.profiler)."""
    from torch.profiler import profile

    with profile() as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key == "aten::convolution_backward")
    return conv / total


def layer_cases() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(what, layer, input shape without the batch) for --layers: depthwise convs as the
    rule measured them first, then channel multiplier 2, dilation 2, grouped convs of
    ResNeXt (32 groups of 4) and RegNet (group width 8, 16), 1-d and transposed depthwise
    convs, 3-d depthwise convs (contiguous), and dense dilated and transposed convs (U-Net's
    2×2 stride 2, DCGAN's 4×4 stride 2) for comparison."""

    def dw(c, k, s=1, d=1, m=1):
        k = (k, k) if isinstance(k, int) else k
        return nn.Conv2d(c, m * c, k, s, (d * (k[0] // 2), d * (k[1] // 2)), dilation=d, groups=c)

    def grouped(c, width, s):
        return nn.Conv2d(c, c, 3, s, 1, groups=c // width)

    def transposed(c, out, k, s, groups):
        return nn.ConvTranspose2d(c, out, k, s, (k - s + 1) // 2, groups=groups)

    def dw1d(c, k, s=1, d=1, m=1):
        return nn.Conv1d(c, m * c, k, s, d * (k // 2), dilation=d, groups=c)

    map16, map8 = (256, 16, 16), (128, 16, 16)
    return [
        ("depthwise 3×3 s1", dw(256, 3), map16),
        ("depthwise 3×3 s2", dw(256, 3, 2), map16),
        ("depthwise 5×5 s1", dw(256, 5), map16),
        ("depthwise 7×7 s1", dw(256, 7), map16),
        ("depthwise ×2 3×3 s1", dw(128, 3, m=2), map8),
        ("depthwise ×2 3×3 s2", dw(128, 3, 2, m=2), map8),
        ("depthwise ×2 5×5 s1", dw(128, 5, m=2), map8),
        ("depthwise 3×3 dil 2 s1", dw(256, 3, d=2), map16),
        ("depthwise 3×3 dil 2 s2", dw(256, 3, 2, d=2), map16),
        ("depthwise 5×5 dil 2 s1", dw(256, 5, d=2), map16),
        ("grouped 32×4 3×3 s1", grouped(128, 4, 1), map8),
        ("grouped 32×4 3×3 s2", grouped(128, 4, 2), map8),
        ("grouped 16×8 3×3 s1", grouped(128, 8, 1), map8),
        ("grouped 16×8 3×3 s2", grouped(128, 8, 2), map8),
        ("grouped 8×16 3×3 s1", grouped(128, 16, 1), map8),
        ("grouped 8×16 3×3 s2", grouped(128, 16, 2), map8),
        ("depthwise 1×7 s1", dw(256, (1, 7)), map16),
        ("depthwise 7×1 s1", dw(256, (7, 1)), map16),
        ("depthwise 1×3 s1", dw(256, (1, 3)), map16),
        ("depthwise 3×5 s1", dw(256, (3, 5)), map16),
        ("depthwise 2×2 s1", dw(256, 2), map16),
        ("depthwise 1-d k3 s1", dw1d(256, 3), (256, 256)),
        ("depthwise 1-d k3 s2", dw1d(256, 3, 2), (256, 256)),
        ("depthwise 1-d k7 s1", dw1d(256, 7), (256, 256)),
        ("depthwise 1-d k7 s2", dw1d(256, 7, 2), (256, 256)),
        ("depthwise 1-d k3 dil 2 s1", dw1d(256, 3, d=2), (256, 256)),
        ("depthwise 1-d ×2 k3 s1", dw1d(256, 3, m=2), (256, 256)),
        ("depthwise 3-d 3×3×3 s1", nn.Conv3d(64, 64, 3, 1, 1, groups=64), (64, 8, 8, 8)),
        ("depthwise 3-d 3×3×3 s2", nn.Conv3d(64, 64, 3, 2, 1, groups=64), (64, 8, 8, 8)),
        ("depthwise 3-d 5×5×5 s1", nn.Conv3d(64, 64, 5, 1, 2, groups=64), (64, 8, 8, 8)),
        ("depthwise 3-d ×2 3×3×3 s1", nn.Conv3d(64, 128, 3, 1, 1, groups=64), (64, 8, 8, 8)),
        ("transposed depthwise 3×3 s1", transposed(256, 256, 3, 1, 256), map16),
        ("transposed depthwise 2×2 s2", transposed(256, 256, 2, 2, 256), (256, 8, 8)),
        ("transposed depthwise 4×4 s2", transposed(256, 256, 4, 2, 256), (256, 8, 8)),
        ("transposed grouped 32×4 3×3 s1", transposed(128, 128, 3, 1, 32), map8),
        ("transposed grouped 32×4 4×4 s2", transposed(128, 128, 4, 2, 32), (128, 8, 8)),
        ("transposed grouped 16×8 4×4 s2", transposed(128, 128, 4, 2, 16), (128, 8, 8)),
        ("transposed grouped 8×16 4×4 s2", transposed(128, 128, 4, 2, 8), (128, 8, 8)),
        ("transposed dense 2×2 s2", transposed(128, 64, 2, 2, 1), (128, 16, 16)),
        ("transposed dense 4×4 s2", transposed(128, 64, 4, 2, 1), (128, 16, 16)),
        ("dense 3×3 dil 2 s1", nn.Conv2d(128, 128, 3, 1, 2, dilation=2), map8),
    ]


def layer_stepper(layer: nn.Module, x: torch.Tensor, amp: bool):
    """One forward and backward of `layer` on a copy of x (input and weight gradients);
    returns the seconds it took."""
    x = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()

    def step() -> float:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = layer(x)
        y.backward(torch.ones_like(y))
        return time.perf_counter() - start

    return step


def time_layer(layer: nn.Module, x: torch.Tensor, steps: int) -> dict[str, list[float]]:
    """ms of each way (fp32, bf16, kept) per round, the ways alternated round by round."""
    kept = copy.deepcopy(layer)
    keep_fp32(kept, [""])
    ways = {
        "fp32": layer_stepper(layer, x, False),
        "bf16": layer_stepper(copy.deepcopy(layer), x.bfloat16(), True),
        "kept": layer_stepper(kept, x.bfloat16(), True),
    }
    for step in ways.values():
        step(), step()  # warm-up: oneDNN's kernels are made on first use
    times = {way: [] for way in ways}
    for i in range(steps):
        order = list(ways) if i % 2 == 0 else list(reversed(ways))  # no way always first
        for way in order:
            times[way].append(ways[way]() * 1e3)
    return times


def spread(t: list[float]) -> str:
    return f"{statistics.median(t):.1f} ({min(t):.1f}–{max(t):.1f})"


def round_ratio(a: list[float], b: list[float]) -> str:
    """Median of the per-round ratios a / b."""
    return f"{statistics.median(p / q for p, q in zip(a, b, strict=True)):.2f}"


def measure_layers(steps: int, batch: int, only: str) -> None:
    """Print one Markdown row per layer_cases() entry whose name holds `only` (see the
    module docstring)."""
    print("| layer | input | fp32 ms | bf16 ms | kept fp32 ms | bf16 / kept | bf16 / fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for what, layer, shape in layer_cases():
        if only not in what:
            continue
        torch.manual_seed(0)
        x = torch.randn(batch, *shape)
        if x.dim() == 4:
            layer = layer.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        t = time_layer(layer, x, steps)
        print(
            f"| {what} | {'×'.join(map(str, shape))} | {spread(t['fp32'])} | "
            f"{spread(t['bf16'])} | {spread(t['kept'])} | {round_ratio(t['bf16'], t['kept'])} "
            f"| {round_ratio(t['bf16'], t['fp32'])} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="*")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--layers", action="store_true", help="single layers, batch 64")
    parser.add_argument("--only", default="", help="with --layers: those whose name has it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.layers:
        measure_layers(args.steps, 64, args.only)
    for name in args.families:
        model, x, y = model_and_input(name, args.batch)
        kept = copy.deepcopy(model)
        names = fp32_layers(kept)
        keep_fp32(kept, names)
        ways = {
            "fp32": stepper(model, x, y, False),
            "bf16": stepper(copy.deepcopy(model), x, y, True),
            "bf16+fp32 layers": stepper(kept, x, y, True),
        }
        times = {way: [] for way in ways}
        for step in ways.values():
            step()  # warm-up: oneDNN's kernels are made on first use
        for _ in range(args.steps):
            for way, step in ways.items():
                times[way].append(step())
        rates = {way: args.batch / statistics.median(t) for way, t in times.items()}
        shares = {way: conv_backward_share(ways[way]) for way in ("bf16", "bf16+fp32 layers")}
        print(
            f"{name}: {len(names)} layers kept in fp32; img/s (median of {args.steps}) "
            + ", ".join(f"{way} {r:.0f}" for way, r in rates.items())
            + f"; conv backward share of the step: bf16 {shares['bf16']:.0%}, "
            f"with fp32 layers {shares['bf16+fp32 layers']:.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
