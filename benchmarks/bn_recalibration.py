"""What recomputing BatchNorm's statistics after training (train/norm_stats.py) does to
finished runs: validation accuracy under every test-time augmentation, with the statistics
the run saved and with statistics recomputed as `cnnlab train` now does after its last epoch
(4,096 images of the run's own training split, drawn by its seed, in its batch size, its
precision and channels-last). Only validation images are scored: nothing here looks at test.

    .venv/bin/python benchmarks/bn_recalibration.py RUN [RUN ...] [--images 4096]

Use it on runs saved with `--bn-recalibrate 0`, or by a version before the recomputation:
on a run that already recomputed, both columns agree.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from cnnlab.data import train_val_split
from cnnlab.train.norm_stats import recalibrate, sample
from cnnlab.train.rundir import load_run
from train_time_to_accuracy import VIEWS, val_accuracies  # a sibling script


def recalibrated_val(out: Path, images: int) -> dict[str, float]:
    """val_accuracies of the run in `out` after recomputing its BatchNorm statistics."""
    run = load_run(out)
    fraction, seed = run.config["val_fraction"], run.config["seed"]
    train, _ = train_val_split(run.dataset("train"), fraction, seed)
    x = sample(run.preprocess(train.images), images, seed)
    batch = run.config["batch_size"] // run.config.get("world_size", 1)  # as a rank trained
    layout = run.config.get("channels_last", True)
    recalibrate(run.model, x, batch, autocast=run.autocast, channels_last=layout)
    return val_accuracies(out, model=run.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=4096)
    args = parser.parse_args()
    print("| run | statistics | " + " | ".join(VIEWS) + " |")
    print("|---|---|" + "---|" * len(VIEWS))
    gains = {view: [] for view in VIEWS}
    for out in args.runs:
        saved, recomputed = val_accuracies(out), recalibrated_val(out, args.images)
        for name, accs in (("saved", saved), ("recomputed", recomputed)):
            cells = " | ".join(f"{a:.2%}" for a in accs.values())
            print(f"| {out.name} | {name} | {cells} |")
        for view in VIEWS:
            gains[view].append(recomputed[view] - saved[view])
    for view, g in gains.items():
        print(
            f"{view}: recomputed - saved, mean {statistics.mean(g):+.2%} "
            f"(min {min(g):+.2%}, max {max(g):+.2%}) over {len(g)} runs"
        )


if __name__ == "__main__":
    main()
