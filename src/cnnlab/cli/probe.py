"""`cnnlab probe`: linear-probe accuracy of every layer of a trained run (notes §5.4).

cnnlab probe RUN [--train N] [--test N] [--epochs N] [--layers NAME...] [--json] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

from cnnlab.cli.progress import progress_bar
from cnnlab.cli.rundata import RUN_HELP, add_data_option, load_run_at
from cnnlab.cli.tables import column, literal


def count(text: str) -> int:
    """argparse type: a whole number ≥ 1 (--top-k, --channels, --steps; probe's --train,
    --test and --epochs, which the library refused without naming the option)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def probe_images(text: str) -> int:
    """argparse type of probe's --train: a whole number >= 2, the images whose std scales
    the features (one image's is NaN, and the L-BFGS fit ended in an overflow traceback)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be a whole number >= 2 (their std scales the features), got {text!r}"
        )
    return value


def add_probe(sub: argparse._SubParsersAction) -> None:
    """The probe command's parser (`cnnlab explain`'s `register` adds it after visualize)."""
    q = sub.add_parser("probe", help="linear-probe accuracy of every layer of a run (§5.4)")
    q.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    q.add_argument(
        "--train",
        type=probe_images,
        default=5000,
        metavar="N",
        help="the first N images of the train split fit each probe (default 5000; at least 2)",
    )
    q.add_argument(
        "--test",
        type=count,
        default=2000,
        metavar="N",
        help="the first N images of the test split score it (default 2000)",
    )
    q.add_argument(
        "--epochs", type=count, default=100, metavar="N",
        help="L-BFGS iterations per probe (default 100)",
    )  # fmt: skip
    q.add_argument(
        "--layers",
        nargs="+",
        help="dotted module names, a call of a module called again as `relu #2` (default: "
        "every call of every block)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_data_option(q)
    q.set_defaults(run=_probe)


def _probe(args: argparse.Namespace) -> int:
    from cnnlab.explain import linear_probe

    run = load_run_at(args.run_dir, args.data)
    train, test = run.dataset("train"), run.dataset("test")
    n_train, n_test = min(args.train, len(train)), min(args.test, len(test))  # what was used
    layers = args.layers
    if layers is None:  # the default blocks, chosen once: the note's and the probes'
        layers, note = default_layers(run, train.images[:2])
        if note:  # on stderr: --json's stdout holds the document alone
            print(f"note: {note}", file=sys.stderr, flush=True)
    with progress_bar() as progress:  # features of train, then test images, then the fits
        acc = linear_probe(
            run.model,
            (train.images[:n_train], train.labels[:n_train]),
            (test.images[:n_test], test.labels[:n_test]),
            layers=layers,
            epochs=args.epochs,
            preprocess=run.preprocess,
            progress=progress,
        )
    rows = probe_rows(run.model, acc)
    if args.json:  # the table's facts alone on stdout (the bar draws on stderr)
        probes = {
            "run": str(run.path),
            "train_images": n_train,
            "test_images": n_test,
            "epochs": args.epochs,
            "layers": rows,
        }
        print(json.dumps(probes, indent=2, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    title = f"linear probes on {run.path} ({n_train} train / {n_test} test images)"
    table = Table(title=literal(title))
    for col in ("layer", "kind", "test accuracy"):
        table.add_column(col, **column(col != "test accuracy"))
    for row in rows:
        table.add_row(literal(row["name"]), literal(row["kind"]), f"{row['accuracy']:.1%}")
    Console().print(table)
    return 0


def probe_rows(model, accuracy: dict[str, float]) -> list[dict]:
    """linear_probe's {layer: test accuracy} as rows {"name", "kind", "accuracy"}, in its
    order: "input" is the raw pixels, a layer's kind its module's class (a module called
    more than once has a row per call, labelled as the summary labels calls: `relu #2`)."""
    from cnnlab.inspect.names import split_call

    kinds = dict(model.named_modules())
    rows = []
    for name, a in accuracy.items():  # a call's label (`relu #2`): its module's kind
        kind = "raw pixels" if name == "input" else type(kinds[split_call(name, kinds)[0]]).__name__
        rows.append({"name": name, "kind": kind, "accuracy": a})
    return rows


def default_layers(run, images) -> tuple[list[str] | None, str | None]:
    """(the run's blocks linear_probe probes by default, or None where there is none, for it
    to say why; one line naming the calls of its blocks they leave out, each with its
    output's shape in a forward of two images (no axis of one row per image: a window
    attention's, a block called once per image), or None). images: of the run's data set,
    as stored (`run.preprocess` makes them the model's)."""
    from cnnlab.explain.probe import probe_layer_choice
    from cnnlab.inspect import as_float, unwrap

    choice = probe_layer_choice(unwrap(run.model), as_float(images, run.preprocess))
    if not choice.left_out:
        return choice.layers or None, None
    said = ", ".join(
        f"{n} (its output for 2 images: {tuple(s)})" for n, s in choice.left_out.items()
    )
    return choice.layers or None, (
        "left out of the probes, no axis of one row per image (a row per window, or a call "
        f"per image): {said}"
    )
