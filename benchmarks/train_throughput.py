"""Training throughput: cnnlab's trainer against the plain PyTorch tutorial loop.

Same model (the `fast` preset), same process, rounds alternated so that load from other
processes falls on both alike. The tutorial loop is what the PyTorch tutorials teach: a
`Dataset` whose `__getitem__` converts, normalizes and augments one image (pad-crop by 2 and
a flip, as cnnlab does), a `DataLoader` (batch 64, shuffle, no worker processes: on two
cores workers would only compete with the math), fp32, NCHW. cnnlab is `cnnlab.train.train`
itself on the same images (one epoch, no validation), whose img/s covers only its steps, as
the tutorial's timing does.

    .venv/bin/python benchmarks/train_throughput.py --images 12800 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import load_dataset, normalization_stats
from cnnlab.train import TrainConfig, train
from train_efficiency import matmul_flops  # a sibling script: benchmarks/ is on sys.path


class TutorialSet(torch.utils.data.Dataset):
    """Per-sample transforms, as in the tutorials: to float, normalize, pad-crop, flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = (self.images[i].float() / 255 - self.mean) / self.std  # (1, 28, 28)
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        dy, dx = torch.randint(0, 5, (2,)).tolist()
        x = x[:, dy : dy + 28, dx : dx + 28]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.labels[i]


def tutorial_img_per_s(ds, mean: float, std: float) -> float:
    torch.manual_seed(0)
    model = cnnlab.build("fast")  # fp32, NCHW
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = torch.utils.data.DataLoader(
        TutorialSet(ds.images, ds.labels, mean, std), batch_size=64, shuffle=True
    )
    model.train()
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def cnnlab_img_per_s(ds, out: str) -> float:
    config = TrainConfig(epochs=1, val_fraction=0.0, tta=False)
    result = train("fast", ds, out, config, force=True)
    return result["img_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12800, help="training images per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    full = load_dataset("fashion-mnist", "train")
    ds = full.subset(torch.arange(args.images))
    (mean,), (std,) = normalization_stats(ds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    tutorial, ours, ceilings = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            tutorial.append(tutorial_img_per_s(ds, mean, std))
            ours.append(cnnlab_img_per_s(ds, os.path.join(tmp, "run")))
            # the hardware's own ratio: the tutorial's math is fp32, cnnlab's bf16
            fp32, bf16 = matmul_flops(dtype=torch.float32), matmul_flops(dtype=torch.bfloat16)
            ceilings.append(bf16 / fp32)
            print(
                f"round {r + 1}: tutorial {tutorial[-1]:.0f} img/s, cnnlab {ours[-1]:.0f} img/s; "
                f"matmul fp32 {fp32 / 1e9:.0f}, bf16 {bf16 / 1e9:.0f} GFLOP/s"
            )
    ratios = [b / a for a, b in zip(tutorial, ours, strict=True)]
    print(
        f"median tutorial {statistics.median(tutorial):.0f} img/s, cnnlab "
        f"{statistics.median(ours):.0f} img/s, ratio {statistics.median(ratios):.2f}× "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {args.rounds} rounds; bf16/fp32 "
        f"matmul {statistics.median(ceilings):.2f}×; load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
