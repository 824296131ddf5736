"""How far the trainer's speed-up over the tutorial loop can go on one model, measured.

The throughput goal compares two ways of running the same model: the tutorial's (fp32, NCHW,
batch 64) and cnnlab's (bf16 autocast, channels-last, batch 128). Their convolutions alone
set a bound. For each convolution of the model (found by running it once), forward +
backward of that convolution alone is timed both ways on an input of its shape (the first
layer's input needs no gradient, as in training), rounds alternated; per image, CPU seconds.
Then one whole training step of each (forward, loss, backward, SGD step; no data loading) and,
with `--compile`, cnnlab's step under torch.compile (inductor), alternated the same way.

It prints per layer the two times and their ratio, the model's conv-only ratio (sum over
layers), and two figures that bound the goal:
- the ceiling: the tutorial's step ÷ cnnlab's convolutions alone, i.e. the ratio if all of
  cnnlab's BatchNorm, ReLU, pooling and optimizer work cost nothing (the tutorial's data
  loading, not timed here, would add a few per cent to it);
- the budget at 3×: how much time per image cnnlab's step may spend outside its
  convolutions for 3× the tutorial, against what it spends today.

    .venv/bin/python benchmarks/train_bound.py [--spec fast] [--rounds 9] [--compile]

Results of 2026-12-02 (one thread, CPU seconds, nearly quiet machine) are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity

import cnnlab

TUTORIAL = {"dtype": torch.float32, "channels_last": False, "batch": 64}
CNNLAB = {"dtype": torch.bfloat16, "channels_last": True, "batch": 128}
# aten ops of a convolution (forward and backward, and the calls on the way to oneDNN)
CONV_OPS = ("aten::conv", "aten::_conv", "aten::mkldnn_conv")


def train_step(spec: str, size: tuple, way: dict, compiled: bool = False) -> Callable[[], None]:
    """One SGD step of the model built from `spec` on a random batch, run `way`."""
    torch.manual_seed(0)
    net = cnnlab.build(cnnlab.load_spec(spec)).train()
    x = torch.randn(way["batch"], *size)
    if way["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (way["batch"],))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    run = torch.compile(net) if compiled else net

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=way["dtype"] is torch.bfloat16):
            loss = F.cross_entropy(run(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def conv_layer(event) -> tuple[int, int, int, int] | None:
    """(C in, C out, H, W of the input) of a convolution's profiler event, None for another
    op: forward events list (input, weight), backward ones (output gradient, input)."""
    if not event.key.startswith(CONV_OPS) or len(event.input_shapes) < 2:
        return None
    a, b = event.input_shapes[:2]
    if len(a) != 4 or len(b) != 4:
        return None
    if event.key == "aten::convolution_backward":
        return (b[1], a[1], b[2], b[3])
    return (a[1], b[0], a[2], a[3])


def profiled(step: Callable[[], None], batch: int) -> tuple[float, dict]:
    """One call of step: CPU seconds per image, and per convolution layer its share of them
    (torch.profiler, shapes recorded). The profiler times ops by the wall clock, which
    counts time the process waited for a core: a layer's share is its ops' self time over
    the step's wall time, applied to the step's CPU time."""
    with torch.profiler.profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    layers: dict[tuple, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        layer = conv_layer(event)
        if layer is not None:
            share = event.self_cpu_time_total / 1e6 / wall
            layers[layer] = layers.get(layer, 0.0) + share * cpu / batch
    return cpu / batch, layers


def rounds_of(steps: dict[str, tuple[Callable, int]], rounds: int) -> dict[str, list]:
    """profiled() of each step once per round, rounds alternated, after a warm-up call each."""
    for step, _ in steps.values():
        step()
    found: dict[str, list] = {k: [] for k in steps}
    for _ in range(rounds):
        for key, (step, batch) in steps.items():
            found[key].append(profiled(step, batch))
    return found


def _mmm(values: list[float], scale: float = 1e6) -> str:
    return "/".join(
        f"{v * scale:.0f}" for v in (min(values), statistics.median(values), max(values))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="fast")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also cnnlab's step compiled")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(cnnlab.load_spec(args.spec).input)
    steps = {
        "tutorial": (train_step(args.spec, size, TUTORIAL), TUTORIAL["batch"]),
        "cnnlab": (train_step(args.spec, size, CNNLAB), CNNLAB["batch"]),
    }
    if args.compile:
        start = time.perf_counter()
        steps["cnnlab compiled"] = (train_step(args.spec, size, CNNLAB, compiled=True), 128)
        steps["cnnlab compiled"][0]()
        print(f"compiling cnnlab's step: {time.perf_counter() - start:.0f} s")
    print(
        f"{args.spec}; {args.threads} thread(s); {args.rounds} rounds; load "
        f"{os.getloadavg()[0]:.1f}; CPU µs per image, min/median/max over rounds"
    )
    report(rounds_of(steps, args.rounds))


def report(found: dict[str, list]) -> None:
    """Per layer, per step and the bound, from `rounds_of`'s measurements."""
    step = {k: [t for t, _ in v] for k, v in found.items()}
    conv = {
        k: {layer: statistics.median(l[layer] for _, l in v) for layer in v[0][1]}
        for k, v in found.items()
    }
    for layer in conv["tutorial"]:
        t, c = conv["tutorial"][layer], conv["cnnlab"].get(layer, float("nan"))
        print(
            f"conv {layer[0]:>3} -> {layer[1]:<3} at {layer[2]}×{layer[3]}: tutorial "
            f"{t * 1e6:5.0f}  cnnlab {c * 1e6:5.0f}  ratio {t / c:.2f}"
        )
    sums = {k: sum(v.values()) for k, v in conv.items()}
    med = {k: statistics.median(v) for k, v in step.items()}
    for key in found:
        print(
            f"{key} step: {_mmm(step[key])}; convolutions {sums[key] * 1e6:.0f} "
            f"({sums[key] / med[key]:.0%} of the step)"
        )
    print(
        f"convolutions alone: ratio {sums['tutorial'] / sums['cnnlab']:.2f}x; whole step "
        f"(no data loading): {med['tutorial'] / med['cnnlab']:.2f}x"
    )
    if "cnnlab compiled" in med:
        print(f"compiled vs eager cnnlab step: {med['cnnlab'] / med['cnnlab compiled']:.2f}x")
    print(f"ceiling, all but cnnlab's convolutions free: {med['tutorial'] / sums['cnnlab']:.2f}x")
    outside = med["cnnlab"] - sums["cnnlab"]
    budget = med["tutorial"] / 3 - sums["cnnlab"]
    print(
        f"at 3x cnnlab may spend {budget * 1e6:.0f} µs/image outside its convolutions; it "
        f"spends {outside * 1e6:.0f} ({budget / outside:.0%} of today's would have to do)"
    )


if __name__ == "__main__":
    main()
