"""Time to 93 % and 94 % Fashion-MNIST test accuracy for `cnnlab train --preset fast`.

Runs the real command once per epoch budget (a one-cycle schedule is planned for its
budget, so a shorter budget is a separate run, not an early epoch of a longer one) and
reports the training time (the steps), the wall time of the whole command (start-up, data,
validation, checkpoints, test evaluation), the test accuracy without and with flip TTA, and
the peak RSS of the process (from wait4). Hyper-parameters were tuned on the validation
split only; the test set is only reported.

    .venv/bin/python benchmarks/train_time_to_accuracy.py --epochs 6 8 10 --seeds 0 1
    .venv/bin/python benchmarks/train_time_to_accuracy.py --epochs 13 --seeds 0 1 \\
        --train-args "--val-fraction 0 --tta-shift 1"   # the 94 % recipe: all 60,000 images
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CNNLAB = str(Path(sys.executable).with_name("cnnlab"))


def run(epochs: int, seed: int, out: Path, extra: list[str]) -> dict:
    cmd = [
        CNNLAB, "train", "--preset", "fast", "--data", "fashion-mnist", "--epochs", str(epochs),
        "--seed", str(seed), "--out", str(out), "--force", "--quiet", "--json", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        child = subprocess.Popen(cmd, stdout=stdout)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        text = stdout.read()
    if child.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {child.returncode}")
    result = json.loads(text)
    result["command_seconds"] = time.perf_counter() - start
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[6, 8, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/bench-tta")
    parser.add_argument(
        "--train-args",
        default="",
        help="more `cnnlab train` options, e.g. '--val-fraction 0 --tta-shift 1'",
    )
    args = parser.parse_args()
    extra = args.train_args.split()
    print(f"cnnlab train --preset fast {' '.join(extra)}")
    print(f"load {os.getloadavg()}")
    print(
        "| epochs | seed | train s (steps only) | command s (all) | val acc | test acc "
        "| test acc, flip TTA | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for epochs in args.epochs:
        for seed in args.seeds:
            r = run(epochs, seed, Path(args.out) / f"e{epochs}-s{seed}", extra)
            print(
                f"| {epochs} | {seed} | {r['train_seconds']:.0f} | {r['command_seconds']:.0f} "
                f"| {r.get('val_acc') or float('nan'):.2%} | {r['test_acc']:.2%} "
                f"| {r.get('test_acc_tta', float('nan')):.2%} "
                f"| {r['peak_rss_mib']:.0f} MiB |",
                flush=True,
            )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
