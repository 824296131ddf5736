"""Time to 94 % Fashion-MNIST test accuracy, in tutorial epochs, and the validation search
that chose the recipe.

`final` (the default) trains a recipe once per seed (on all 60,000 training images, or on
the training split with `--val-fraction`, whose validation accuracies it then records too)
and measures, in the same run and alternated with those trainings, the plain PyTorch tutorial
loop of benchmarks/train_throughput.py (fp32, NCHW, batch 64, SGD, Dataset + DataLoader) on
the same model (`--tutorial-preset` to use another as the yardstick): its time on
`--tutorial-images` images, scaled to 60,000, is one tutorial epoch. The figure of a seed is
the wall time of its whole `cnnlab train` command (start-up, data, steps, validation, the test
evaluation with TTA) ÷ the mean of the tutorial epochs measured before and after it; the
steps-only figure and the CPU-seconds figure (the child's user + system time against the
tutorial's process time: steadier than wall time on a shared machine at one thread) are
printed beside it.

`search` trains each candidate on 54,000 images and scores it on the 6,000 held out
(`--val-fraction 0.1`, stratified, split seeded by the run's seed), under every test-time
augmentation (none, flip, flip + 1-px shifts, flip + 2-px shifts), so the TTA is chosen on
validation too. It never looks at the test set: the test numbers the command prints are
dropped before anything is written. Each run is appended to a JSON Lines file as it ends.

A one-cycle schedule is planned for its budget, so each epoch budget is a separate run.

On a shared machine run both with OMP_NUM_THREADS=1: two threads per process there wait for
each other at every parallel op (26 against 111-131 img/s for one `cnnlab` step, same minute).

    # candidates on the validation split, TTA chosen there too (one epoch budget per run)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_time_to_accuracy.py search \\
        --epochs 10 12 --seeds 0 1 --recipe fast=fast --recipe cand=path/to/cand.yaml \\
        --log benchmarks/results/search.jsonl
    # a model from code: {seed} in the options becomes each run's seed
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_time_to_accuracy.py search \\
        --epochs 7 --seeds 0 1 \\
        --recipe "w=benchmarks/recipes/whiten_net.py:make_net:--model-arg seed={seed}"
    # the recipe chosen there (E epochs, its TTA), 3 seeds, with the tutorial-epoch figure
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_time_to_accuracy.py final \\
        --preset fast --epochs E --seeds 0 1 2 --train-args "--tta-shift 1" \\
        --log benchmarks/results/final.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import load_dataset, normalization_stats, train_val_split
from cnnlab.train.evaluate import predict_logits
from cnnlab.train.rundir import load_run
from train_throughput import TutorialSet  # a sibling script: benchmarks/ is on sys.path

CNNLAB = str(Path(sys.executable).with_name("cnnlab"))
EPOCH_IMAGES = 60_000  # a tutorial epoch: all Fashion-MNIST training images
VIEWS = {"none": None, "flip": 0, "flip+shift1": 1, "flip+shift2": 2}  # TTA -> tta_shift
TEST_KEYS = ("test_loss", "test_acc", "test_acc_tta")


def split_recipe(spec: str) -> tuple[str, str]:
    """'PRESET[:OPTIONS]' or 'file.py:factory[:OPTIONS]' -> (model, options)."""
    head, code, rest = spec.partition(".py:")
    if code:
        factory, _, options = rest.partition(":")
        return f"{head}.py:{factory}", options
    model, _, options = spec.partition(":")
    return model, options


def model_flags(model: str) -> list[str]:
    """`cnnlab train`'s model options: a preset or spec file, or code (file.py:factory)."""
    return ["--model", model] if ".py:" in model else ["--preset", model]


def train_command(model: str, epochs: int, seed: int, out: Path, extra: list[str]) -> dict:
    """Run `cnnlab train` once; its JSON result with the command's wall time and peak RSS.
    `{seed}` in `extra` becomes the seed (a --model-arg that must match the run's split)."""
    extra = [e.replace("{seed}", str(seed)) for e in extra]
    cmd = [
        CNNLAB, "train", *model_flags(model), "--data", "fashion-mnist", "--epochs", str(epochs),
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
    result["command_seconds"] = round(time.perf_counter() - start, 2)
    result["command_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    result["peak_rss_mib"] = round(usage.ru_maxrss / 1024)  # Linux: KiB
    return result


def val_accuracies(out: Path, model: torch.nn.Module | None = None) -> dict[str, float]:
    """Accuracy of the run in `out` (or of `model` in its place) on the run's own validation
    split, under each TTA of VIEWS."""
    run = load_run(out)
    fraction, seed = run.config["val_fraction"], run.config["seed"]
    _, val = train_val_split(run.dataset("train"), fraction, seed)
    x = run.preprocess(val.images)
    flip = run.config.get("flip") is not False  # as cnnlab.train.evaluate.evaluate
    accuracies = {}
    for name, shift in VIEWS.items():
        logits = predict_logits(
            run.model if model is None else model,
            x,
            tta=shift is not None,
            tta_shift=shift or 0,
            tta_flip=flip,
            autocast=run.autocast,
            channels_last=True,
        )
        accuracies[name] = round((logits.argmax(1) == val.labels).float().mean().item(), 5)
    return accuracies


def append(log: Path | None, row: dict) -> None:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")


def search(args, extra: list[str]) -> None:
    """Every (recipe, epochs, seed) trained on the training split, scored on validation."""
    recipes = dict(r.split("=", 1) for r in args.recipe) or {"fast": "fast"}
    print(f"search: val fraction {args.val_fraction}, load {os.getloadavg()}")
    print("| recipe | epochs | seed | train s | command s | " + " | ".join(VIEWS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(VIEWS))
    for name, spec in recipes.items():
        preset, options = split_recipe(spec)
        for epochs in args.epochs:
            for seed in args.seeds:
                out = Path(args.out) / f"{name}-e{epochs}-s{seed}"
                flags = ["--val-fraction", str(args.val_fraction), "--no-tta", *options.split()]
                r = train_command(preset, epochs, seed, out, [*extra, *flags])
                for key in TEST_KEYS:  # never looked at while choosing
                    r.pop(key, None)
                val = val_accuracies(out)
                utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                row = {
                    "recipe": name, "preset": preset, "options": options, "epochs": epochs,
                    "seed": seed, "train_seconds": r["train_seconds"],
                    "command_seconds": r["command_seconds"],
                    "command_cpu_seconds": r["command_cpu_seconds"], "val_acc": val,
                    "load": os.getloadavg(), "time": utc,
                }  # fmt: skip
                append(args.log, row)
                accs = " | ".join(f"{v:.2%}" for v in val.values())
                print(
                    f"| {name} | {epochs} | {seed} | {r['train_seconds']:.0f} "
                    f"| {r['command_seconds']:.0f} | {accs} |",
                    flush=True,
                )


def tutorial_seconds(ds, mean: float, std: float, preset: str) -> tuple[float, float]:
    """(wall, CPU) seconds of train_throughput.py's tutorial loop (per-image transforms in a
    Dataset, DataLoader of 64, fp32, NCHW, SGD) over `ds` once, on the model `preset`."""
    torch.manual_seed(0)
    model = cnnlab.build(preset)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = torch.utils.data.DataLoader(
        TutorialSet(ds.images, ds.labels, mean, std), batch_size=64, shuffle=True
    )
    model.train()
    start, cpu = time.perf_counter(), time.process_time()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def tutorial_epoch(images: int, preset: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one tutorial-loop epoch of 60,000 images, from `images`."""
    full = load_dataset("fashion-mnist", "train")
    ds = full.subset(torch.arange(images))
    (mean,), (std,) = normalization_stats(ds)
    wall, cpu = tutorial_seconds(ds, mean, std, preset)
    return wall * EPOCH_IMAGES / images, cpu * EPOCH_IMAGES / images


def spread(values: list[float], form: str = ".2f") -> str:
    """min – median – max."""
    return " – ".join(
        format(v, form) for v in (min(values), statistics.median(values), max(values))
    )


def final(args, extra: list[str]) -> None:
    """Each seed between two tutorial-epoch measurements. `--val-fraction 0` trains on all
    60,000 images; above 0 the run also scores its validation split (every TTA of VIEWS), so
    one run can be both the evidence a recipe was chosen on and its measurement."""
    flags = [*extra, "--val-fraction", str(args.val_fraction)]
    yardstick = args.tutorial_preset or args.preset
    print(f"cnnlab train --preset {args.preset} {' '.join(flags)}, epochs {args.epochs[0]}")
    print(f"tutorial loop on {yardstick}, {args.tutorial_images} images a measurement")
    print(f"torch threads {torch.get_num_threads()}, load {os.getloadavg()}")
    print(
        "| seed | val acc, flip+shift1 | test acc | test acc, TTA | command s | steps s "
        "| tutorial epoch s | tutorial epochs (command) | tutorial epochs (steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    tutorial = [tutorial_epoch(args.tutorial_images, yardstick)]
    rows = []
    for seed in args.seeds:
        name = Path(args.preset.split(".py:")[0]).stem
        out = Path(args.out) / f"{name}-final-e{args.epochs[0]}-s{seed}"
        r = train_command(args.preset, args.epochs[0], seed, out, flags)
        val = val_accuracies(out) if args.val_fraction > 0 else {}
        tutorial.append(tutorial_epoch(args.tutorial_images, yardstick))
        epoch = (tutorial[-2][0] + tutorial[-1][0]) / 2
        epoch_cpu = (tutorial[-2][1] + tutorial[-1][1]) / 2
        row = {
            "preset": args.preset, "options": " ".join(flags), "epochs": args.epochs[0],
            "seed": seed, "val_acc": val, "test_acc": r["test_acc"],
            "test_acc_tta": r.get("test_acc_tta"), "command_seconds": r["command_seconds"],
            "train_seconds": r["train_seconds"], "tutorial_epoch_seconds": round(epoch, 2),
            "tutorial_epochs": round(r["command_seconds"] / epoch, 3),
            "tutorial_epochs_steps": round(r["train_seconds"] / epoch, 3),
            "command_cpu_seconds": r["command_cpu_seconds"],
            "tutorial_epoch_cpu_seconds": round(epoch_cpu, 2),
            "tutorial_epochs_cpu": round(r["command_cpu_seconds"] / epoch_cpu, 3),
            "threads": torch.get_num_threads(), "peak_rss_mib": r["peak_rss_mib"],
            "load": os.getloadavg(), "tutorial_preset": yardstick,
        }  # fmt: skip
        rows.append(row)
        append(args.log, row)
        print(
            f"| {seed} | {val.get('flip+shift1', float('nan')):.2%} | {r['test_acc']:.2%} "
            f"| {r.get('test_acc_tta') or float('nan'):.2%} | {r['command_seconds']:.0f} "
            f"| {r['train_seconds']:.0f} | {epoch:.1f} | {row['tutorial_epochs']:.2f} "
            f"| {row['tutorial_epochs_steps']:.2f} |",
            flush=True,
        )
    summarize(rows, tutorial)


def summarize(rows: list[dict], tutorial: list[float]) -> None:
    if rows[0]["val_acc"]:
        for view in VIEWS:
            vals = [r["val_acc"][view] for r in rows]
            print(f"val acc {view}: mean {statistics.mean(vals):.2%} ({spread(vals, '.2%')})")
    accs = [r["test_acc_tta"] or r["test_acc"] for r in rows]
    print(
        f"test acc (the recipe's TTA) mean {statistics.mean(accs):.2%} over {len(rows)} seeds "
        f"(min {min(accs):.2%}, max {max(accs):.2%})"
    )
    print(
        "tutorial epochs, whole command, min – median – max: "
        f"{spread([r['tutorial_epochs'] for r in rows])}"
    )
    print(
        "tutorial epochs, steps only, min – median – max: "
        f"{spread([r['tutorial_epochs_steps'] for r in rows])}"
    )
    walls = [wall for wall, _ in tutorial]
    print(f"tutorial epoch s, {len(tutorial)} measurements: {spread(walls)}")
    print(
        "tutorial epochs in CPU seconds (both sides), min – median – max: "
        f"{spread([r['tutorial_epochs_cpu'] for r in rows])}"
    )
    print(f"load {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("final", "search"), default="final")
    parser.add_argument("--epochs", type=int, nargs="+", default=[8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--preset", default="fast", help="final: preset, spec file or file.py:factory to train"
    )
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="NAME=PRESET[:OPTIONS]",
        help="search: a candidate, e.g. 'bs64=fast:--batch-size 64' or "
        "'w=net.py:make_net:--model-arg seed={seed}' ({seed}: the run's; repeatable)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="held out of the training images (search: default 0.1; final: default 0, all)",
    )
    parser.add_argument("--tutorial-images", type=int, default=6400)
    parser.add_argument(
        "--tutorial-preset", help="final: the tutorial loop's model (default: --preset's)"
    )
    parser.add_argument("--out", default="runs/bench-tta")
    parser.add_argument("--log", type=Path, help="JSON Lines file to append each run to")
    parser.add_argument(
        "--train-args", default="", help="more `cnnlab train` options, e.g. '--tta-shift 1'"
    )
    args = parser.parse_args()
    extra = args.train_args.split()
    if args.val_fraction is None:
        args.val_fraction = 0.1 if args.mode == "search" else 0.0
    if args.mode == "search":
        search(args, extra)
    else:
        final(args, extra)


if __name__ == "__main__":
    main()
