"""Efficiency: training FLOP/s of cnnlab's trainer ÷ bf16 matmul FLOP/s, in the same run.

Training FLOPs per image = 6 × forward MACs (2 FLOPs per multiply-add; the backward pass
costs about twice the forward: gradients for inputs and for weights), with the MACs of
`cnnlab.summary` (torchinfo's convention). The peak is a square bf16 matmul (oneDNN's
best case). Rounds alternate the two measurements; the ratio is taken per round.

`--breakdown N` profiles `cnnlab.train.train` itself on N images (torch.profiler, self CPU
time by kind of op: convolutions, BatchNorm, ReLU, pooling, the rest) and prints the
ceiling it implies: the img/s if everything but the convolutions cost nothing.

    .venv/bin/python benchmarks/train_efficiency.py --images 12800 --rounds 3
    .venv/bin/python benchmarks/train_efficiency.py --rounds 0 --breakdown 1280 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, train


def matmul_flops(
    n: int = 2048, repeats: int = 20, dtype: torch.dtype = torch.bfloat16, clock=time.perf_counter
) -> float:
    """FLOP/s of an n×n matmul in `dtype`: 2·n³ per product, median of `repeats` timed by
    `clock` (time.process_time: CPU seconds of all threads, which load from other processes
    barely changes with one thread)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = clock()
        a @ b
        times.append(clock() - start)
    return 2 * n**3 / statistics.median(times)


KINDS = {  # aten op name (its start) -> kind of work
    "aten::mkldnn_convolution": "conv",
    "aten::convolution_backward": "conv",
    "aten::native_batch_norm": "batchnorm",
    "aten::clamp_min": "relu",
    "aten::relu": "relu",
    "aten::threshold_backward": "relu",
    "aten::max_pool2d": "pool",
}


def step_breakdown(ds, config: TrainConfig) -> dict[str, float]:
    """Share of self CPU time per kind of op over one epoch of `train("fast", ds)` (no run
    directory): {"conv": 0.6, "batchnorm": ..., "relu", "pool", "other"}, summing to 1."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train("fast", ds, None, config)
    times: dict[str, float] = dict.fromkeys(("conv", "batchnorm", "relu", "pool", "other"), 0.0)
    for event in prof.key_averages():
        if event.key.startswith("aten::"):  # self times: each op counted once
            kind = next((k for p, k in KINDS.items() if event.key.startswith(p)), "other")
            times[kind] += event.self_cpu_time_total
    total = sum(times.values())
    return {k: v / total for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--breakdown", type=int, default=0, help="images to profile (0: off)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    macs = cnnlab.summary(cnnlab.load_spec("fast")).total_macs
    ds = load_dataset("fashion-mnist", "train").subset(torch.arange(args.images))
    print(f"fast: {macs:,} MACs/image; {torch.get_num_threads()} threads; load {os.getloadavg()}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            peak = matmul_flops()
            config = TrainConfig(epochs=1, val_fraction=0.0, tta=False)
            img_s = train("fast", ds, os.path.join(tmp, "run"), config, force=True)["img_per_s"]
            achieved = img_s * 6 * macs
            ratios.append(achieved / peak)
            print(
                f"round {r + 1}: bf16 matmul {peak / 1e9:.0f} GFLOP/s, training {img_s:.0f} "
                f"img/s = {achieved / 1e9:.0f} GFLOP/s, efficiency {ratios[-1]:.0%}"
            )
    if ratios:
        print(
            f"median efficiency {statistics.median(ratios):.0%} (min {min(ratios):.0%}, max "
            f"{max(ratios):.0%}) over {args.rounds} rounds; load {os.getloadavg()}"
        )
    if args.breakdown:
        config = TrainConfig(epochs=1, val_fraction=0.0, tta=False)
        shares = step_breakdown(ds.subset(torch.arange(min(args.breakdown, len(ds)))), config)
        print("self CPU time: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
        print(
            f"ceiling if all but the convolutions were free: {1 / shares['conv']:.2f}x "
            f"today's img/s; load {os.getloadavg()}"
        )


if __name__ == "__main__":
    main()
