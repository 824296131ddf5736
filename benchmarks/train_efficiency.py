"""Efficiency: training FLOP/s of cnnlab's trainer ÷ bf16 matmul FLOP/s, in the same run.

Training FLOPs per image = 6 × forward MACs (2 FLOPs per multiply-add; the backward pass
costs about twice the forward: gradients for inputs and for weights), with the MACs of
`cnnlab.summary` (torchinfo's convention). The peak is a square bf16 matmul (oneDNN's
best case). Rounds alternate the two measurements; the ratio is taken per round.

    .venv/bin/python benchmarks/train_efficiency.py --images 12800 --rounds 3
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


def matmul_flops(n: int = 2048, repeats: int = 20, dtype: torch.dtype = torch.bfloat16) -> float:
    """FLOP/s of an n×n matmul in `dtype`: 2·n³ per product, median of `repeats`."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
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
    print(
        f"median efficiency {statistics.median(ratios):.0%} (min {min(ratios):.0%}, max "
        f"{max(ratios):.0%}) over {args.rounds} rounds; load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
