"""Commands `train`, `eval`, `predict` and `demo`: train a run, measure it, use it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from cnnlab.design.spec import preset_names
from cnnlab.errors import CnnlabError

# TrainConfig fields exposed as options: name -> (type, help). Booleans get --x/--no-x.
_KNOBS = {
    "batch_size": (int, "global batch size"),
    "optimizer": (str, "sgd-nesterov | adamw"),
    "lr": (float, "peak learning rate"),
    "momentum": (float, "SGD momentum (AdamW beta1)"),
    "weight_decay": (float, "weight decay on conv/linear weights (not norms, biases)"),
    "schedule": (str, "onecycle | cosine"),
    "warmup": (float, "fraction of steps spent warming up"),
    "label_smoothing": (float, "label smoothing of the cross-entropy targets"),
    "translate": (int, "random shift by pad-and-crop, pixels (0: off)"),
    "flip": (bool, "random horizontal flips"),
    "erase": (float, "random-erasing probability (0: off)"),
    "ema": (str, "weight EMA decay per step, or 'none'"),
    "tta": (bool, "flip test-time augmentation at evaluation"),
    "tta_shift": (int, "with --tta, also average the image moved N px up/down/left/right"),
    "precision": (str, "auto | bf16 | fp32"),
    "channels_last": (bool, "NHWC memory layout"),
    "compile": (bool, "torch.compile the model"),
    "val_fraction": (float, "validation share of the training set"),
    "seed": (int, "random seed"),
    "diagnose_every": (int, "store diagnostics every N epochs (0: off)"),
}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a spec or preset; writes a run directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("spec", nargs="?", help="spec file (.yaml/.json)")
    source.add_argument("--preset", help=f"preset name: {', '.join(preset_names())}")
    p.add_argument("--data", help="fashion-mnist (default) | digits | shapes | DIR")
    p.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--out", required=True, help="run directory to write, e.g. runs/fast")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="replace the run in --out")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.add_argument("--quiet", action="store_true", help="no progress bar nor per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    for name, (kind, text) in _KNOBS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            p.add_argument(flag, type=kind, help=text)
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a run")
    p.add_argument("run_dir", metavar="RUN", help="run directory")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--tta", action="store_true", help="average with mirrored images")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_eval)

    p = sub.add_parser("predict", help="top-k classes of image files with a trained run")
    p.add_argument("run_dir", metavar="RUN", help="run directory")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG/... files")
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_predict)

    p = sub.add_parser(
        "demo", help="train the fast preset on Fashion-MNIST, evaluate, predict, write the report"
    )
    p.add_argument("--out", default="runs/demo", help="run directory (replaced if it exists)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (default 5, a few minutes)")
    p.add_argument("--data", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.set_defaults(run=_demo)


# --- train -------------------------------------------------------------------------------


def _config(args):
    """TrainConfig from the options given; None when resuming without any (use the run's)."""
    from cnnlab.train import TrainConfig

    given = {k: getattr(args, k) for k in [*_KNOBS, "epochs"] if getattr(args, k) is not None}
    if "ema" in given:
        given["ema"] = _ema(given["ema"])
    if args.resume and not given:
        return None
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    base = {}
    stored = Path(args.out) / "config.json"
    if args.resume and stored.is_file():  # compare only the options given with the run's
        base = {k: v for k, v in json.loads(stored.read_text()).items() if k in names}
    return TrainConfig(**{**base, **{k: v for k, v in given.items() if k in names}})


def _ema(text: str) -> float | None:
    if text.lower() in ("none", "off", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise CnnlabError(f"--ema {text!r} is not a number or 'none'") from None


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _reporters(quiet: bool) -> dict:
    """train()'s progress keywords: a rich bar on a terminal, else one plain line per epoch
    (a bar redrawn in a log file shows nothing until the end)."""
    if quiet or not _is_main_rank():
        return {}
    if not sys.stdout.isatty():
        return {"on_epoch": _print_epoch}
    return {"progress": _progress()}


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.3f}"),
        TextColumn("{task.fields[ips]:,.0f} img/s"),
        TimeRemainingColumn(),
    )


def _print_epoch(row: dict, epochs: int) -> None:
    val = f"  val acc {row['val_acc']:.4f}" if "val_acc" in row else ""
    print(
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc "
        f"{row['train_acc']:.4f}{val}  {row['img_per_s']:,.0f} img/s  {row['seconds']:.1f} s",
        flush=True,
    )


def _run_training(spec, data, out, config, **kwargs) -> dict:
    """train() with a live progress bar around it when there is one."""
    from cnnlab.train import train

    progress = kwargs.get("progress")
    if progress is None:
        return train(spec, data, out, config, **kwargs)
    with progress:
        return train(spec, data, out, config, **kwargs)


def _train(args) -> int:
    from cnnlab.train import TrainingInterrupted

    spec = args.preset or args.spec
    if spec is None and not args.resume:
        raise CnnlabError("give a spec file or --preset NAME (e.g. --preset fast)")
    data = args.data if args.data is not None or args.resume else "fashion-mnist"
    config = _config(args)
    options = {"resume": args.resume, "force": args.force, "strict": args.strict}
    try:
        result = _run_training(spec, data, args.out, config, **options, **_reporters(args.quiet))
    except TrainingInterrupted as stop:
        if _is_main_rank():
            print(f"cnnlab train: {stop}")
        return 130
    if _is_main_rank():
        result.pop("model", None)
        if args.json:
            print(json.dumps({**result, "converted": len(result["converted"])}, indent=2))
        else:
            _print_data_notes(result)
            _print_result(result)
    return 0


def _print_data_notes(result: dict) -> None:
    """One line per unreadable image skipped, and how many images were converted."""
    for path, reason in result["skipped"]:
        print(f"skipped {path}: {reason}")
    converted = result["converted"]
    if converted:
        kinds = sorted({change for _, change in converted})
        shown = ", ".join(kinds[:3]) + (", ..." if len(kinds) > 3 else "")
        images = "image" if len(converted) == 1 else "images"
        print(f"converted {len(converted)} {images} to the model's input ({shown})")


def _print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {result['out']}", show_header=False)
    labels = {
        "epochs": "epochs",
        "train_acc": "train accuracy (augmented)",
        "val_acc": "validation accuracy",
        "test_acc": "test accuracy",
        "test_acc_tta": "test accuracy, flip TTA",
        "train_seconds": "training time (s)",
        "img_per_s": "images/s (mean of epochs)",
    }
    for key, label in labels.items():
        if key in result and result[key] is not None:
            value = result[key]
            text = f"{value:.2%}" if key.endswith("_acc") or "acc_" in key else f"{value}"
            table.add_row(label, text)
    Console().print(table)
    print(f"run saved in {result['out']}")


# --- eval --------------------------------------------------------------------------------


def _eval(args) -> int:
    from cnnlab.train.evaluate import evaluate
    from cnnlab.train.rundir import load_run

    result = evaluate(load_run(args.run_dir), args.split, tta=args.tta)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_evaluation(result)
    return 0


def _print_evaluation(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tta = ", flip TTA" if result.tta else ""
    console.print(
        f"{result.split} accuracy{tta}: [bold]{result.accuracy:.2%}[/bold] "
        f"on {result.n} images (cross-entropy {result.loss:.4f})"
    )
    per_class = Table(title="per-class accuracy")
    per_class.add_column("class")
    per_class.add_column("accuracy", justify="right")
    for name, acc in zip(result.classes, result.per_class, strict=True):
        per_class.add_row(name, f"{acc:.2%}")
    console.print(per_class)
    confusion = Table(title="confusion matrix (rows: true class, columns: predicted)")
    confusion.add_column("")
    for i in range(len(result.classes)):
        confusion.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(result.classes, result.confusion, strict=True)):
        cells = [
            f"[bold]{v}[/bold]" if j == i else (str(v) if v else ".") for j, v in enumerate(row)
        ]
        confusion.add_row(f"{i} {name}", *cells)
    console.print(confusion)


# --- predict -----------------------------------------------------------------------------


def _predict(args) -> int:
    from cnnlab.train.evaluate import predict
    from cnnlab.train.rundir import load_run

    if args.top < 1:
        raise CnnlabError(f"--top must be at least 1, got {args.top}")
    predictions = predict(load_run(args.run_dir), args.images, top=args.top)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        _print_predictions(predictions)
    return 0


def _print_predictions(predictions) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="predictions (softmax probabilities)")
    table.add_column("image")
    table.add_column("size", justify="right")
    for i in range(len(predictions[0].top)):
        table.add_column(f"top {i + 1}")
    for p in predictions:
        cells = [f"{name} {prob:.1%}" for name, prob in p.top]
        table.add_row(p.source, f"{p.size[0]}×{p.size[1]}", *cells)
    Console().print(table)


# --- demo --------------------------------------------------------------------------------


def _demo(args) -> int:
    """Train `fast` on Fashion-MNIST, evaluate with TTA, predict three test images, report."""
    from cnnlab.report import write_report
    from cnnlab.train import TrainConfig, TrainingInterrupted
    from cnnlab.train.evaluate import evaluate, predict
    from cnnlab.train.rundir import load_run

    out = Path(args.out)
    config = TrainConfig(epochs=args.epochs, diagnose_every=1)  # the report's health per epoch
    print(
        f"training the `fast` preset on {args.data} for {config.epochs} epochs into {out} ...",
        flush=True,
    )
    try:
        _run_training("fast", args.data, out, config, force=True, **_reporters(False))
    except TrainingInterrupted as stop:
        print(f"cnnlab demo: {stop}")
        return 130
    run = load_run(out)
    _print_evaluation(evaluate(run, "test", tta=config.tta))
    paths = write_sample_images(run, out / "samples", n=3)
    _print_predictions(predict(run, paths, top=3))
    print("writing the report (Grad-CAM, features, probes, health) ...", flush=True)
    started = time.perf_counter()
    report = write_report(out)
    print(f"report written in {time.perf_counter() - started:.0f} s: {report.resolve()}")
    print(f"\nthe run is in {out}/ (spec.yaml, config.json, metrics.jsonl, model.safetensors)")
    print(f"try: cnnlab eval {out} --tta    cnnlab predict {out} {paths[0]}")
    return 0


def write_sample_images(run, directory: Path, n: int = 3) -> list[Path]:
    """Save the first `n` test images as PNG files named after their true class."""
    from PIL import Image

    ds = run.dataset("test")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = ds.images[i].permute(1, 2, 0).squeeze(-1).numpy()  # (H, W) or (H, W, 3)
        name = ds.classes[int(ds.labels[i])].replace("/", "-").replace(" ", "-").lower()
        path = directory / f"test{i}-{name}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
