"""`cnnlab import --model REF --weights FILE.safetensors --data DATA --out RUN`: a run directory
for a model trained elsewhere (its test accuracy measured), for every command that takes a run."""

from __future__ import annotations

import argparse
import json

from cnnlab.errors import CnnlabError

CODE_WARNING = (
    "Loading a model from code runs that code (the file's top level and the factory) with "
    "your rights: import only code you trust. Weights are read from .safetensors only."
)

# The commands that open an imported run (tests/test_import.py runs each on one; train
# --resume refuses it: it has no training to continue).
RUN_COMMANDS = ("eval", "predict", "explain", "visualize", "diagnose", "probe", "report", "serve")


def register(sub) -> None:
    p = sub.add_parser(
        "import",
        help="make a run directory from your model code and weights trained elsewhere",
        description="Build the model from --model (file.py:factory or package.module:factory, "
        "with --model-arg name=value literals), load --weights (safetensors, every tensor's "
        "shape checked), take classes and normalization from --data or the options, evaluate "
        "it on the test split and write a run directory that "
        f"{', '.join(RUN_COMMANDS[:-1])} and {RUN_COMMANDS[-1]} accept. " + CODE_WARNING,
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="REF",
        help="your model's factory: path/to/file.py:make_net or package.module:make_net "
        "(runs that code)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument of the factory, a Python literal (repeatable): width=16, "
        "\"act='gelu'\"",
    )
    p.add_argument("--weights", required=True, metavar="FILE", help="a .safetensors state_dict")
    p.add_argument(
        "--data",
        help="data set the model classifies, a name or DIR: its test split is evaluated "
        "(without --data, give --classes, --mean, --std and --input; nothing is evaluated)",
    )
    p.add_argument(
        "--out", required=True, help="run directory to write, new or empty, e.g. runs/imported"
    )
    p.add_argument("--classes", help="comma-separated class names (default: --data's)")
    p.add_argument(
        "--mean",
        help="comma-separated per-channel mean of pixels scaled to 0..1, as the weights were "
        "trained with, e.g. 0.5 or 0.485,0.456,0.406 (default: --data's train split's)",
    )
    p.add_argument(
        "--std",
        help="comma-separated per-channel std of pixels scaled to 0..1, e.g. 0.5 or "
        "0.229,0.224,0.225 (default: --data's train split's)",
    )
    p.add_argument(
        "--input", "--input-shape", dest="input_shape", metavar="C,H,W",
        help="images the model takes, as for train and summary (default: --data's images)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cnnlab.cli.progress import progress_bar
    from cnnlab.cli.train import print_data_notes
    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    source = parse_model_ref(args.model, args.model_arg)
    options = {
        "classes": _names(args.classes),
        "mean": _numbers("--mean", args.mean, float),
        "std": _numbers("--std", args.std, float),
        "input_shape": _shape(args.input_shape),
    }
    with progress_bar() as progress:  # an image folder's reading, the test split's evaluation
        result = import_run(source, args.weights, args.out, args.data, **options, progress=progress)
    if args.json:  # the converted files counted, as train's --json counts them
        print(json.dumps({**result, "converted": len(result["converted"])}, indent=2))
        return 0
    print_data_notes(result)  # an image folder's skipped and converted files, as train says
    evaluation = result["evaluation"]
    if evaluation is None:
        print("no test split: not evaluated")
    else:
        print(f"test accuracy {evaluation['accuracy']:.2%} on {evaluation['n']} images")
    for note in result["notes"]:
        print(f"note: {note}")
    note = normalization_note(args.mean, args.std, result["mean"], result["std"])
    if note:
        print(f"note: {note}")
    print(f"run written in {result['out']} ({len(result['classes'])} classes, input "
          f"{'×'.join(map(str, result['input_shape']))})")  # fmt: skip
    return 0


def normalization_note(mean: str | None, std: str | None, used_mean, used_std) -> str:
    """What the images were normalized with where --mean or --std was not given (--data's
    train split's statistics): weights trained elsewhere were trained with the normalization
    of their own code, and scored with another their accuracy is lower with no other sign (a
    net trained on (x - 0.5) / 0.5: 95.0 % with those, 83.3 % with the folder's statistics)."""
    if mean is not None and std is not None:
        return ""
    join = lambda values: ",".join(f"{v:.4g}" for v in values)  # noqa: E731
    taken = [f"{name} {join(used)}" for name, given, used in
             (("mean", mean, used_mean), ("std", std, used_std)) if given is None]  # fmt: skip
    return (
        f"images normalized with --data's train-split {' and '.join(taken)}; if the weights "
        "were trained with others (0.5 and 0.5, or ImageNet's 0.485,0.456,0.406 and "
        "0.229,0.224,0.225), import again with --mean and --std"
    )


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise CnnlabError(f"--classes {text!r}: an empty class name; give NAME,NAME,...")
    return names


def _numbers(option: str, text: str | None, kind: type) -> list | None:
    if text is None:
        return None
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise CnnlabError(f"{option} {text!r}: give comma-separated numbers") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise CnnlabError(f"{option} {text!r}: every value must be finite")
    return values


def _shape(text: str | None) -> list[int] | None:
    shape = _numbers("--input", text, int)
    if shape is not None and (len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1):
        from cnnlab.design.spec import channels_last_note

        # 64,64,3 (H,W,C): the order, and the --input it means, not only 'e.g. 1,28,28'
        note = channels_last_note(shape, "--input") if len(shape) == 3 else ""
        raise CnnlabError(
            f"--input {text!r}: give C,H,W with C 1 or 3, e.g. 1,28,28"
            + (f"; note: {note}" if note else "")
        )
    return shape
