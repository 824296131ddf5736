"""Training throughput: cnnlab's trainer against the plain PyTorch tutorial loop.

Same model (the `fast` preset), same process, rounds alternated so that load from other
processes falls on both alike. The tutorial loop is what the PyTorch tutorials teach: a
`Dataset` whose `__getitem__` converts, normalizes and augments one image (pad-crop by 2 and
a flip, as cnnlab does), a `DataLoader` (batch 64, shuffle, no worker processes: on two
cores workers would only compete with the math), fp32, NCHW. cnnlab is `cnnlab.train.train`
itself on the same images (one epoch, no validation), whose img/s covers only its steps, as
the tutorial's timing does.

Each round prints both rates (wall clock), their ratio, cnnlab's training GFLOP/s (6 × the
forward MACs per image, see train_efficiency.py) as a fraction of the matmul peak in the
precision cnnlab trains at (bf16 on a CPU with AVX-512 BF16, else fp32) measured in the same
round, and the same ratio in CPU seconds (time.process_time of both
loops; cnnlab's includes its set-up and checkpoint, so it is the conservative one). With
`--threads 1` the CPU-time ratio hardly moves with load from other processes; with two
threads a busy machine stalls every parallel op (one thread waits for the other to be
scheduled), so wall-clock figures then say more about the load than the code.

Levers measured for the `fast` model (2026-12-02, 2-core AVX512-BF16 EPYC shared by other
work at load 6-9, so: 1 thread, CPU seconds per step, n = 25 steps each, alternated; img/s
min / median; batch 128). None gained beyond the noise, so none was kept:
- bf16 model with fp32 master weights instead of autocast: 755 / 701 vs 751 / 702. Autocast
  on the CPU already runs BatchNorm, ReLU and max-pool on bf16 activations (fp32 BN
  parameters, no fp32 round trip: tests/test_train_precision.py); the only casts are the
  seven weights and their gradients, which the master copy casts too.
- in-place ReLU 763 / 705; foreach SGD 762 / 701; fused SGD 789 / 698; the EMA update
  (torch._foreach_lerp_) costs nothing measurable (762 / 702 with it).
- the batch augmentation costs ~2 % (686 vs 702 median).
- max-pool: F.max_pool2d (channels-last bf16) 7.1 ms forward + backward at 128×32×28²,
  against 73-83 ms for torch.maximum of four strided views or amax over a reshape.
- batch size (a recipe knob, default 128): 64: 661 / 594, 128: 837 / 720, 256: 785 / 687.
- convolutions already run at the bf16 matmul peak (1 thread: 157-195 GFLOP/s forward +
  backward for layers 2-6 against 184 for a 2048² matmul); a profile of the trainer puts 64 %
  of its CPU time in them, 12 % BatchNorm, 9 % ReLU, 8 % max-pool, 6 % the rest
  (train_efficiency.py --breakdown). If all but the convolutions were free, img/s would
  rise 1.55×: 3× the tutorial needs the element-wise work fused into few passes, which eager
  PyTorch on a CPU does not offer (torch.compile was slower, and compiles in the epoch; an
  inductor-compiled BatchNorm + ReLU alone: 55 ms forward + backward at 128×32×28², against
  10.8 ms eager, after 88 s of compiling; the whole training step compiled, forward and
  backward: 0.84-0.94x eager in CPU time, train_bound.py --compile).
- the bound (train_bound.py): cnnlab's convolutions alone are 2.18x the tutorial's (bf16 vs
  fp32 oneDNN), 70 % of its step; with everything else free the step would be 3.07x the
  tutorial's, so 3x needs the rest cut to 5 % of today's.

Runs of 2026-12-02 (--images 6400 --rounds 3; load from other work on the 2 cores):
- 2 threads, load 2.2-2.5: ratio 2.26 (2.22-7.57)x (round 1's tutorial hit a load spike),
  CPU-time ratio 2.24 (2.19-4.58)x, tutorial 556 vs cnnlab 1253 img/s, cnnlab at 59 %
  (59-64 %) of the bf16 matmul peak; the next run, load 3.1-3.6: 1.95 (1.65-2.83)x;
- 2 threads, load 7-9: 1.81 (1.78-2.36)x, CPU time 2.29 (2.06-2.32)x, 29 vs 57 img/s;
- 1 thread, load 8-12: 1.75 (1.55-2.24)x, CPU time 2.10 (1.91-2.36)x, 72 % (58-74 %) of
  the bf16 peak in CPU time.
The trainer's CPU time at 2 threads, load 2: convolutions 66 %, BatchNorm 13 %, ReLU 8 %,
max-pool 6 %, the rest 8 % (ceiling if all but the convolutions were free: 1.52x).

    .venv/bin/python benchmarks/train_throughput.py --images 6400 --rounds 3
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
from cnnlab.train import TrainConfig, bf16_supported, train
from train_efficiency import matmul_flops  # a sibling script: benchmarks/ is on sys.path

TRAIN_DTYPE = torch.bfloat16 if bf16_supported() else torch.float32  # what `precision auto` picks
PEAK = "bf16" if TRAIN_DTYPE == torch.bfloat16 else "fp32"


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


def cpu_timed(fn, *args) -> tuple[float, float]:
    """(fn(*args), CPU seconds of this process it took)."""
    start = time.process_time()
    value = fn(*args)
    return value, time.process_time() - start


def one_round(ds, mean: float, std: float, out: str, flops_per_image: float) -> dict:
    """Tutorial, cnnlab, then the matmul peaks (wall clock and CPU time), in that order."""
    tutorial, tutorial_cpu = cpu_timed(tutorial_img_per_s, ds, mean, std)
    ours, ours_cpu = cpu_timed(cnnlab_img_per_s, ds, out)
    # the hardware's own ratio: the tutorial's math is fp32, cnnlab's bf16 where the CPU has it
    # (without AVX-512 BF16, bf16 matmuls are emulated: minutes per call, and not what trains)
    fp32, bf16 = matmul_flops(dtype=torch.float32), matmul_flops(dtype=TRAIN_DTYPE)
    bf16_cpu = matmul_flops(dtype=TRAIN_DTYPE, clock=time.process_time)
    return {
        "tutorial": tutorial,
        "cnnlab": ours,
        "ratio": ours / tutorial,
        "cpu_ratio": tutorial_cpu / ours_cpu,
        "gflops": ours * flops_per_image / 1e9,
        "peak": ours * flops_per_image / bf16,
        "cpu_peak": len(ds) / ours_cpu * flops_per_image / bf16_cpu,
        "bf16": bf16,
        "bf16_fp32": bf16 / fp32,
        "load": os.getloadavg()[0],
    }


def spread(values: list[float], fmt: str = ".2f") -> str:
    """'median (min–max)' of `values`."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


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
    flops_per_image = 6 * cnnlab.summary(cnnlab.load_spec("fast")).total_macs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = ds.subset(torch.arange(min(512, len(ds))))  # oneDNN builds its kernels once
        tutorial_img_per_s(warm, mean, std), cnnlab_img_per_s(warm, os.path.join(tmp, "run"))
        for r in range(args.rounds):
            rows.append(one_round(ds, mean, std, os.path.join(tmp, "run"), flops_per_image))
            row = rows[-1]
            print(
                f"round {r + 1}: tutorial {row['tutorial']:.0f} img/s, cnnlab {row['cnnlab']:.0f}"
                f" img/s, ratio {row['ratio']:.2f}x (CPU time {row['cpu_ratio']:.2f}x); cnnlab "
                f"{row['gflops']:.0f} GFLOP/s = {row['peak']:.0%} of the {PEAK} matmul's "
                f"{row['bf16'] / 1e9:.0f} ({row['cpu_peak']:.0%} in CPU time); load "
                f"{row['load']:.1f}"
            )
    print_table(rows)
    col = {k: [row[k] for row in rows] for k in rows[0]}
    print(
        f"ratio {spread(col['ratio'])}x median (min–max) over {args.rounds} rounds; CPU-time "
        f"ratio {spread(col['cpu_ratio'])}x; tutorial {spread(col['tutorial'], '.0f')} img/s, "
        f"cnnlab {spread(col['cnnlab'], '.0f')} img/s at {spread(col['peak'], '.0%')} of the "
        f"{PEAK} matmul peak ({spread(col['cpu_peak'], '.0%')} in CPU time; {PEAK}/fp32 matmul "
        f"{spread(col['bf16_fp32'])}x); load "
        f"{os.getloadavg()}"
    )


def print_table(rows: list[dict]) -> None:
    """The rounds as a Markdown table, ready for BENCHMARKS.md."""
    print(
        "| round | tutorial img/s | cnnlab img/s | ratio | CPU-time ratio | cnnlab GFLOP/s "
        f"| of {PEAK} peak | CPU-time of peak | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows, 1):
        print(
            f"| {i} | {row['tutorial']:.0f} | {row['cnnlab']:.0f} | {row['ratio']:.2f}x | "
            f"{row['cpu_ratio']:.2f}x | {row['gflops']:.0f} | {row['peak']:.0%} | "
            f"{row['cpu_peak']:.0%} | {row['load']:.1f} |"
        )


if __name__ == "__main__":
    main()
