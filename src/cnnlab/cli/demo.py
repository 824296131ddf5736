"""`cnnlab demo`: train the fast preset, evaluate, predict three test images, write the report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cnnlab.cli.evaluate import print_evaluation
from cnnlab.cli.predict import print_predictions
from cnnlab.cli.train import reporters, run_training
from cnnlab.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train the fast preset on Fashion-MNIST, evaluate, predict, write the report",
        description="Train the `fast` preset on --data for --epochs into --out, evaluate it on "
        "the test split, save the first 3 test images as OUT/samples/*.png and predict them, "
        "and write OUT/report.html.",
    )
    p.add_argument(
        "--out",
        default="runs/demo",
        help="run directory (default runs/demo; a previous run there is replaced, a directory "
        "that is not a run is refused)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=5,
        help="epochs (default 5: about 2 min on a CPU with bf16 math; several times that in "
        "fp32, minutes per epoch on 2 cores)",
    )
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="fashion-mnist (default), digits, or a directory of the Fashion-MNIST files: "
        "the sets of 10 classes the `fast` preset is made for",
    )
    p.set_defaults(run=_demo)


def check_demo_data(data: str) -> None:
    """The demo trains the `fast` preset, whose head has 10 outputs: another set failed after
    the first lines with advice the demo cannot take (`--batch-size`, `linear: 4`)."""
    from cnnlab.data.fashion import split_files
    from cnnlab.data.sets import dataset_name
    from cnnlab.design.spec import preset_path

    if dataset_name(data) in ("fashion-mnist", "digits") or split_files(data, "train"):
        return
    raise ConfigError(
        f"the demo trains the `fast` preset (10 classes) on fashion-mnist or digits, not "
        f"{data!r}: for your own images, copy {preset_path('fast')}, set its "
        "`input` and `linear: <classes>`, and run `cnnlab train SPEC --data DIR --out runs/mine`"
    )


def precision_note(data: str, bf16: bool, epochs: int = 5) -> str | None:
    """What to expect of a Fashion-MNIST demo on a CPU without bf16 math, said before the
    first epoch: its 2 minutes were measured with bf16, fp32 takes several times as long,
    and piped output shows nothing until an epoch ends. None with bf16, or on digits.
    A demo of one epoch is offered only --data digits: it already took --epochs 1."""
    from cnnlab.data.sets import dataset_name

    if bf16 or dataset_name(data) == "digits":
        return None
    quicker = "`--data digits`" if epochs <= 1 else "`cnnlab demo --epochs 1` or `--data digits`"
    return (
        "this CPU has no bf16 math, so training runs in fp32, several times slower than with "
        f"it (minutes per epoch on 2 cores); {quicker} is a quicker first look"
    )


def resume_advice(message: str, out: Path) -> str:
    """The trainer's interruption message with the command that resumes the demo's run:
    it says 'continue with --resume', an option of `cnnlab train` that `cnnlab demo` lacks
    (the demo starts again); the report is written by `cnnlab report` after it."""
    command = f"`cnnlab train --out {out} --resume`, then `cnnlab report {out}`"
    if "--resume" in message:
        return message.replace("--resume", command, 1)
    return f"{message}; continue with {command}"


def _demo(args) -> int:
    from cnnlab.report import write_report
    from cnnlab.train import TrainConfig, TrainingInterrupted
    from cnnlab.train.config import bf16_supported
    from cnnlab.train.evaluate import evaluate, predict, tta_label
    from cnnlab.train.rundir import check_out, load_run

    check_demo_data(args.data)
    out = Path(args.out)
    check_out(out, resume=False, force=True)  # a refusal comes before any word of training
    config = TrainConfig(epochs=args.epochs, diagnose_every=1)  # the report's health per epoch
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    print(f"training the `fast` preset on {args.data} for {epochs} into {out} ...", flush=True)
    note = precision_note(args.data, bf16_supported(), args.epochs)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    try:
        run_training("fast", args.data, out, config, force=True, **reporters(False))
    except TrainingInterrupted as stop:
        print(f"cnnlab demo: {resume_advice(str(stop), out)}", file=sys.stderr)
        return 130
    run = load_run(out)
    views = tta_label(run.config)
    print_evaluation(evaluate(run, "test", tta=config.tta and bool(views)), views)
    paths = write_sample_images(run, out / "samples", n=3)
    print_predictions(predict(run, paths, top=3))
    print("writing the report (Grad-CAM, features, probes, health) ...", flush=True)
    started = time.perf_counter()
    report = write_report(out)
    print(f"report written in {time.perf_counter() - started:.0f} s: {report.resolve()}")
    print(f"\nthe run is in {out}/ (spec.yaml, config.json, metrics.jsonl, model.safetensors)")
    print(try_line(out, paths[0], views))
    return 0


def try_line(out: Path, sample: Path, views: str) -> str:
    """The commands to try next: `eval --tta` only for a run with test-time views (a digits
    run has no flips and no shifts, and its --tta says so and evaluates plainly)."""
    tta = " --tta" if views else ""
    return f"try: cnnlab eval {out}{tta}    cnnlab predict {out} {sample}"


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
