"""`cnnlab summary SPEC|PRESET | --model REF [--input C,H,W] [--json] [--compare-mlp HIDDEN]`.

Prints the per-layer table (shape, params, receptive field, MACs), the totals and the design
lints of a spec, a preset or your own model's factory (--model file.py:make_net, which runs
that code; --input then says the image size); --json prints `Summary.to_dict()` instead.
--compare-mlp HIDDEN adds what a fully connected first layer from the flattened image to
HIDDEN units would cost (the notes §1: 3×224×224 into 1,000 units is 150,529,000 parameters).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from typing import TYPE_CHECKING

from cnnlab import geometry
from cnnlab.errors import CnnlabError, ConfigError

if TYPE_CHECKING:  # the library is imported when the command runs: it brings torch
    from cnnlab.design.summary import Summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-layer shapes, params, receptive field, MACs and design lints of a spec, "
        "preset or model from code",
        description=" ".join(__doc__.split("\n\n")[1].split()),  # the paragraph, not usage
    )
    p.add_argument(
        "spec", metavar="SPEC|PRESET", nargs="?", help="a preset name or a .yaml/.json spec"
    )
    p.add_argument(
        "--model",
        metavar="REF",
        help="your model's factory: path/to/file.py:make_net or package.module:make_net "
        "(runs that code)",
    )
    p.add_argument(
        "--model-arg",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="keyword argument of the --model factory, a Python literal (repeatable)",
    )
    p.add_argument(
        "--input",
        metavar="C,H,W",
        help="image size, e.g. 1,28,28 (default: a spec's own input; --model needs it)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--compare-mlp",
        metavar="HIDDEN",
        type=int,
        help="also show the params of a fully connected first layer with HIDDEN units (§1)",
    )
    p.set_defaults(run=_run)


def parse_input(text: str) -> tuple[int, int, int]:
    """'3,224,224' (or 3x224x224) -> (3, 224, 224); anything else is a ConfigError."""
    parts = text.replace("x", ",").replace("×", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise ConfigError(
            f"--input must be three positive integers C,H,W (e.g. 1,28,28), got {text!r}"
        )
    return size


def print_input_note(size: tuple[int, int, int], given_as: str) -> None:
    """On stderr, for an input that reads as (H, W, C) but builds ([32, 32, 3]: 32 channels
    of 32×3 images): how cnnlab reads it and what to write. A note, not a refusal: the
    shape is legal, and the table alone shows 32×3 maps without saying why."""
    from cnnlab.design.spec import channels_last_note

    note = channels_last_note(size, given_as)
    if note:
        print(f"note: {note}", file=sys.stderr)


def mlp_comparison(s: Summary, hidden: int) -> str:
    """One sentence: a dense first layer on the flattened input vs this model (§1)."""
    inputs = math.prod(s.input_size)
    dense = geometry.linear_params(inputs, hidden)
    return (
        f"A fully connected first layer from the flattened {'×'.join(map(str, s.input_size))} "
        f"input ({inputs:,} values) to {hidden:,} units has {dense:,} parameters "
        f"(§1) — {dense / max(s.total_params, 1):,.1f}× this whole model's {s.total_params:,}."
    )


def _run(args: argparse.Namespace) -> int:
    from cnnlab.design.spec import channels_last_note
    from cnnlab.design.summary import summary

    if args.compare_mlp is not None and args.compare_mlp < 1:
        raise ConfigError(
            f"--compare-mlp must be a positive number of units, got {args.compare_mlp}"
        )
    size = parse_input(args.input) if args.input is not None else None
    what = _what(args, size)
    try:
        s = summary(what, size)
    except CnnlabError as error:  # a model that fails on --input 64,64,3: the order, said
        note = channels_last_note(size, "--input") if size is not None else ""
        if note and note not in str(error):
            raise type(error)(f"{error}; note: {note}") from None
        raise
    print_input_note(s.input_size, "input" if size is None else "--input")
    if args.json:
        out = s.to_dict()
        if args.compare_mlp is not None:
            inputs = math.prod(s.input_size)
            out["compare_mlp"] = {
                "hidden": args.compare_mlp,
                "params": geometry.linear_params(inputs, args.compare_mlp),
            }
        print(json.dumps(out, indent=2))
        return 0
    print(s, end="")
    if args.compare_mlp is not None:
        print(textwrap.fill(mlp_comparison(s, args.compare_mlp), width=100))
    return 0


def _what(args: argparse.Namespace, size):
    """The spec or preset named, or the module the --model factory builds."""
    if (args.spec is None) == (args.model is None):
        raise ConfigError("give a spec or preset, or --model file.py:factory (one of them)")
    from cnnlab.inspect import decompiled
    from cnnlab.train.source import parse_model_ref

    if args.model is None:
        if args.model_arg:  # it was ignored without a word: the spec drew as written
            raise ConfigError("--model-arg is for the --model factory; a spec takes none: drop it")
        return args.spec
    # first: a mistyped file or --model-arg without --input was told only to add --input
    source = parse_model_ref(args.model, args.model_arg)
    if size is None:
        raise ConfigError("--model needs --input C,H,W: code does not say its image size")
    # rows named as the commands that open its run name them (`features.3`, no `_orig_mod`)
    return decompiled(source.build(size))  # lazy layers take their shapes from --input
