"""Training cost of candidate models per image, against the tutorial loop on `fast`.

Before a candidate gets a full run on accuracy its cost is measured: `cnnlab.train.train` for
one epoch of `--images` Fashion-MNIST images (no validation, no TTA, every other knob the
default or `--train-args`), rounds alternated with the plain tutorial loop of
train_throughput.py on `fast` (the yardstick of train_time_to_accuracy.py), CPU seconds of
this process (run it with OMP_NUM_THREADS=1 so one core's work is measured). It prints, per
candidate, the median (min–max) CPU seconds per image and what one 54,000-image epoch costs
in tutorial epochs (60,000 images of the tutorial loop).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/candidate_cost.py --rounds 3 \\
        fast=fast pf=benchmarks/recipes/pf-fast.yaml
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import tempfile
import time

import torch

from cnnlab.data import load_dataset, normalization_stats
from cnnlab.train import TrainConfig, train
from cnnlab.train.source import parse_model_ref
from train_time_to_accuracy import tutorial_seconds  # a sibling script

SPLIT_IMAGES, EPOCH_IMAGES = 54_000, 60_000


def model_source(spec: str):
    """A spec or preset as it is; `file.py:factory` as train() takes code."""
    return parse_model_ref(spec, []) if ".py:" in spec else spec


def candidate_cpu(spec: str, ds, out: str, options: dict) -> float:
    config = TrainConfig(epochs=1, val_fraction=0.0, tta=False, **options)
    start = time.process_time()
    train(model_source(spec), ds, out, config, force=True)
    return time.process_time() - start


def parse_options(text: str) -> dict:
    """'batch_size=64 label_smoothing=0.2 channels_last=False' -> TrainConfig keywords, each
    value a Python literal or else a string ('optimizer=adamw'): bool('False') was True."""
    options = {}
    for item in text.split():
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", metavar="NAME=SPEC")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--options", default="", help="TrainConfig keywords, e.g. batch_size=64")
    args = parser.parse_args()
    candidates = dict(c.split("=", 1) for c in args.candidates)
    options = parse_options(args.options)
    ds = load_dataset("fashion-mnist", "train").subset(torch.arange(args.images))
    (mean,), (std,) = normalization_stats(ds)
    print(f"{torch.get_num_threads()} threads, {args.images} images, load {os.getloadavg()}")
    cpu = {name: [] for name in ["tutorial", *candidates]}
    with tempfile.TemporaryDirectory() as tmp:
        warm = ds.subset(torch.arange(512))
        for spec in candidates.values():  # oneDNN builds its kernels once per shape
            candidate_cpu(spec, warm, os.path.join(tmp, "run"), options)
        for _ in range(args.rounds):
            cpu["tutorial"].append(tutorial_seconds(ds, mean, std, "fast")[1])
            for name, spec in candidates.items():
                cpu[name].append(candidate_cpu(spec, ds, os.path.join(tmp, "run"), options))
    tutorial_epoch = statistics.median(cpu["tutorial"]) * EPOCH_IMAGES / args.images
    print(f"tutorial epoch (60,000 images, `fast`): {tutorial_epoch:.1f} CPU s")
    print("| candidate | CPU ms / image, median (min–max) | tutorial epochs per 54k epoch |")
    print("|---|---:|---:|")
    for name, values in cpu.items():
        per = [v / args.images * 1000 for v in values]
        epoch = statistics.median(values) * SPLIT_IMAGES / args.images / tutorial_epoch
        print(
            f"| {name} | {statistics.median(per):.3f} ({min(per):.3f}–{max(per):.3f}) "
            f"| {epoch:.3f} |",
            flush=True,
        )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
