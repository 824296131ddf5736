"""`cnnlab train`: train a spec, a preset or a model from your code; writes a run directory.

Every TrainConfig field is an option, derived from the dataclass (name, type, and the help
text written beside the field), so the options cannot drift from the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from cnnlab.cli.notes import print_name_note, print_stray_note
from cnnlab.design.presetfiles import preset_names
from cnnlab.errors import EXIT_RANK_LOST, CnnlabError, ConfigError, RankLost

CODE_WARNING = (
    "Loading a model from code (--model file.py:factory) runs that code with your rights, "
    "at training and whenever the run is opened: use only code you trust."
)


def register(sub) -> None:
    from cnnlab.train.config import TrainConfig, help_text

    p = sub.add_parser(
        "train",
        help="train a spec, preset or model from code; writes a run directory",
        description="Train a model and write a run directory (spec or model record, config, "
        "metrics, checkpoints, weights). " + CODE_WARNING,
    )
    _model_options(p)
    p.add_argument("--data", help="fashion-mnist (default) | digits | shapes | DIR")
    p.add_argument("--out", required=True, help="run directory to write, e.g. runs/fast")
    # one or the other: both together resumed, silently, whatever --force was meant to do
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its own model, data "
        "and training options (no need to repeat them; a different one is refused)",
    )
    again.add_argument(
        "--force", action="store_true", help="replace the run in --out (deletes its run files)"
    )
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.add_argument("--quiet", action="store_true", help="no progress bar nor per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="also checkpoint within an epoch after this many seconds (default 60)",
    )
    knobs = p.add_argument_group("training options (TrainConfig; default: the fast recipe)")
    for field in dataclasses.fields(TrainConfig):
        flag = option(field.name)
        text = help_text(field.name)
        if field.default is not None:  # None: decided per data set, which the help says
            text += f" (default {field.default})"
        if field.type.startswith("bool"):
            knobs.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        elif field.type.startswith("int"):
            knobs.add_argument(flag, type=int, help=text)
        elif field.name == "ema":
            knobs.add_argument(flag, type=_ema, help=text)
        elif field.type.startswith("float"):
            knobs.add_argument(flag, type=float, help=text)
        else:
            knobs.add_argument(flag, help=text)
    p.set_defaults(run=_recorded)


def option(field: str) -> str:
    """The option of TrainConfig's field `field`: weight_decay -> --weight-decay."""
    return "--" + field.replace("_", "-")


def _model_options(p) -> None:
    """Where the model comes from: a spec, a preset, or code with its arguments and input.
    The spec is no member of the exclusive group: argparse hands an unknown option's value
    to a free positional, and in the group `--limit 6000` read "argument spec: not allowed
    with argument --preset" instead of "unrecognized arguments: --limit" (`_model` checks)."""
    p.add_argument(
        "spec", nargs="?", help="spec file (.yaml/.json), or a preset name as --preset takes"
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", help=f"preset name: {', '.join(preset_names())}")
    source.add_argument(
        "--model",
        metavar="REF",
        help="your model's factory: path/to/file.py:make_net or package.module:make_net "
        "(runs that code)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument of the --model factory, a Python literal (repeatable)",
    )
    p.add_argument(
        "--input",
        metavar="C,H,W",
        help="images the --model code takes, e.g. 3,32,32: the data is converted to them "
        "(channels, size) as for a spec's input (default: the data's own)",
    )


def _ema(text: str) -> float | None | str:
    if text.lower() in ("none", "off", "0"):
        return "none"  # None means "not given"; turned into None in _config
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'none'") from None


def _config(args):
    """TrainConfig from the options given; None when resuming without any (use the run's)."""
    from cnnlab.train import TrainConfig
    from cnnlab.train.rundir import read_config

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if given.get("ema") == "none":
        given["ema"] = None
    if args.resume and not given:
        return None
    base = {}
    if args.resume and (Path(args.out) / "config.json").is_file():
        base = {k: v for k, v in read_config(args.out).items() if k in names}
    return TrainConfig(**{**base, **given})  # a refused option: cli._as_option


def _model(args):
    """The model argument of train(): a ModelSource for --model, else the spec or preset."""
    if args.model_arg and not args.model:
        raise ConfigError("--model-arg needs --model file.py:factory")
    if args.input and not args.model:
        raise ConfigError("--input is for --model code; a spec says its input itself")
    if args.spec and (args.preset or args.model):
        given = "--preset" if args.preset else "--model"
        raise ConfigError(f"give the spec file {args.spec!r} or {given}, not both")
    if args.model:
        from cnnlab.cli.summary import parse_input
        from cnnlab.train.source import parse_model_ref

        source = parse_model_ref(args.model, args.model_arg)
        if args.input and source.kind == "code":
            return dataclasses.replace(source, input_shape=parse_input(args.input))
        return source
    spec = args.preset or args.spec
    if spec is None and not args.resume:
        raise CnnlabError("give a spec file, --preset NAME (e.g. --preset fast) or --model REF")
    return spec


def _input_order_note(model) -> str:
    """channels_last_note of a spec's input ([32, 32, 3]: 32 channels), or of the --input
    given to --model code (64,64,3), for a data error on the channel count, which alone did
    not say the input is in the wrong order ('channels must be 1 or 3 ..., got 64')."""
    from cnnlab.design.spec import channels_last_note, load_spec

    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return channels_last_note(shape, "--input")
    if not isinstance(model, str):
        return ""
    try:
        return channels_last_note(load_spec(model).input)
    except CnnlabError:
        return ""


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def reporters(quiet: bool, json_out: bool = False) -> dict:
    """train()'s progress keywords: a rich bar on a terminal, else one plain line per epoch
    (a bar redrawn in a log file shows nothing until the end). With --json both go to
    stderr: stdout holds the JSON document alone (`train --json > result.json`, `| jq`)."""
    if quiet or not is_main_rank():
        return {}
    stream = sys.stderr if json_out else sys.stdout
    if not stream.isatty():
        return {"on_epoch": functools.partial(_print_epoch, file=stream)}
    return {"progress": _progress(stream)}


def _progress(stream: TextIO | None = None):  # None: rich's stdout
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Measured(ProgressColumn):
        def __init__(self, part: int) -> None:
            super().__init__()
            self.part = part  # 0: loss and accuracy, 1: img/s (two columns, as rich sizes them)

        def render(self, task) -> Text:
            if "loss" not in task.fields:  # the reading of an image folder: nothing measured
                return Text("")
            fields = task.fields["loss"], task.fields["acc"], task.fields["ips"]
            return Text(bar_fields(*fields)[self.part])

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Measured(0),
        Measured(1),
        TimeRemainingColumn(),
        console=Console(file=stream),
    )


def bar_fields(loss: float, acc: float, ips: float) -> tuple[str, str]:
    """The bar's measured parts, ('loss 1.965  acc 0.455', '374 img/s'); dashes before the
    first step is measured (no image seen: img/s 0), where the loop's starting loss is NaN
    and read as a diverged run. A NaN loss after a step is shown as NaN."""
    if ips == 0:
        return "loss -  acc -", "- img/s"
    return f"loss {loss:.3f}  acc {acc:.3f}", f"{ips:,.0f} img/s"


def _print_epoch(row: dict, epochs: int, file: TextIO | None = None) -> None:
    val = f"  val acc {row['val_acc']:.4f}" if "val_acc" in row else ""
    print(
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc "
        f"{row['train_acc']:.4f}{val}  {row['img_per_s']:,.0f} img/s  {row['seconds']:.1f} s",
        file=file,
        flush=True,
    )


def run_training(model, data, out, config, **kwargs) -> dict:
    """train() with a live progress bar around it when there is one."""
    from cnnlab.train import train

    progress = kwargs.get("progress")
    if progress is None:
        return train(model, data, out, config, **kwargs)
    with progress:
        return train(model, data, out, config, **kwargs)


def bf16_note(precision: str, native: bool) -> str:
    """For --precision bf16 where the device has no bf16 math: it is emulated, far slower
    than fp32 (the `fast` preset on digits, 2 cores: 31 img/s against fp32's 374), and
    `auto` would have chosen fp32. '' otherwise."""
    if precision != "bf16" or native:
        return ""
    return (
        "--precision bf16: this machine has no bf16 math, so bf16 is emulated, about 10× "
        "slower than fp32; --precision auto trains in fp32 here"
    )


def print_bf16_note(precision: str) -> None:
    import torch

    from cnnlab.train.config import bf16_supported

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the device training picks
    note = bf16_note(precision, precision == "bf16" and bf16_supported(device))
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)


def _recorded(args) -> int:
    """_train; under torchrun a rank's own error is also written to the file torchrun's end
    summary reads (distributed.record_failure), so the summary names that rank and its line
    as the root cause, not a rank that only heard of it."""
    try:
        return _train(args)
    except Exception as error:
        if os.environ.get("TORCHELASTIC_ERROR_FILE"):  # torchrun: torch is imported
            from cnnlab.train.distributed import record_failure

            record_failure(error)
        raise


def _train(args) -> int:
    from cnnlab.train import TrainingInterrupted
    from cnnlab.train.distributed import timeout_seconds

    if not args.checkpoint_seconds >= 0:  # inf: after each epoch only
        raise ConfigError(
            f"--checkpoint-seconds must be a number of seconds >= 0, got {args.checkpoint_seconds}"
        )
    model = _model(args)
    data = args.data if args.data is not None or args.resume else "fashion-mnist"
    print_name_note(args.data)
    print_stray_note(args.data)
    config = _config(args)
    if config is not None and is_main_rank():
        print_bf16_note(config.precision)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and is_main_rank() and not args.quiet:
        print(
            f"{world} ranks; a rank that stops makes the others fail after "
            f"{timeout_seconds():g} s (set CNNLAB_DDP_TIMEOUT to change it)",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )
    options = {
        "resume": args.resume,
        "force": args.force,
        "strict": args.strict,
        "checkpoint_seconds": args.checkpoint_seconds,
    }
    try:
        progress = reporters(args.quiet, args.json)
        result = run_training(model, data, args.out, config, **options, **progress)
    except CnnlabError as error:  # 'cannot convert 1-channel images to 32 channels': say why
        note = _input_order_note(model) if "channel" in str(error) else ""
        if note:
            raise type(error)(f"{error}; note: {note}") from None
        raise
    except TrainingInterrupted as stop:
        if is_main_rank():
            print(f"cnnlab train: {stop}", file=sys.stderr)
        return 130
    except RankLost as lost:  # every surviving rank says it: which one waited, for how long
        print(f"cnnlab train: {lost}", file=sys.stderr, flush=True)
        return EXIT_RANK_LOST
    if is_main_rank():
        result.pop("model", None)
        if args.json:
            print(json.dumps({**result, "converted": len(result["converted"])}, indent=2))
        else:
            for note in result["notes"] + result["outcome"]:
                print(f"note: {note}")
            print_data_notes(result)
            from cnnlab.train.evaluate import tta_label
            from cnnlab.train.rundir import read_config

            run_config = read_config(args.out)
            print_result(result, tta_label(run_config), evaluated_weights(run_config))
    return 0


def print_data_notes(result: dict) -> None:
    """One line per unreadable image skipped, and how many images were converted."""
    for path, reason in result["skipped"]:
        print(f"skipped {path}: {reason}")
    converted = result["converted"]
    if converted:
        from cnnlab.cli.data import conversions

        # counted by kind as `cnnlab data` counts them: the first three distinct changes
        # were mostly sizes ("50x50->28x28, CMYK->L, 70x50->28x28, ...") and hid RGB->L
        counts = sorted(conversions(converted).items())
        if len(converted) == 1:
            shown = ", ".join(kind for kind, _ in counts)
        else:
            shown = ", ".join(f"{n} {kind}" for kind, n in counts)
        images = "image" if len(converted) == 1 else "images"
        print(f"converted {len(converted)} {images} to the model's input ({shown})")


def evaluated_weights(config: dict) -> str:
    """Which weights the run evaluated and saved, for the final table: the EMA's (what
    model.safetensors holds with --ema) or the last step's. The training accuracy beside it
    is the live weights' on augmented batches, so the two differ for more than one reason."""
    ema = config.get("ema")
    return f"EMA of the weights (decay {ema:g})" if ema else "the last step's (no EMA)"


def print_result(result: dict, views: str = "flip", weights: str = "") -> None:
    """The final table; `views`: the TTA's views as `cnnlab eval` names them, "" for none (a
    digits run without --tta-shift, whose "with TTA" row was the plain accuracy again);
    `weights`: which weights validation, test and model.safetensors hold, "" to leave out."""
    from rich.console import Console
    from rich.table import Table

    from cnnlab.cli.tables import literal

    table = Table(title=literal(f"run {result['out']}"), show_header=False)
    labels = {
        "epochs": "epochs",
        "train_acc": "train accuracy (augmented)",
        "val_acc": "validation accuracy",
        "test_acc": "test accuracy",
        **({"test_acc_tta": f"test accuracy, {views} TTA"} if views else {}),
        "train_seconds": "training time (s)",
        "img_per_s": "images/s (whole run)",
    }
    for key, label in labels.items():
        if key in result and result[key] is not None:
            value = result[key]
            text = f"{value:.2%}" if key.endswith("_acc") or "acc_" in key else f"{value}"
            table.add_row(label, text)
    if weights:
        table.add_row("weights evaluated and saved", weights)
    Console().print(table)
    print(f"run saved in {result['out']}")
