"""`cnnlab eval RUN`: accuracy, per-class accuracy and confusion matrix of a run."""

from __future__ import annotations

import json
import sys

from cnnlab.cli.rundata import RUN_HELP, add_data_option, load_run_at
from cnnlab.cli.tables import literal


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a run")
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "--split", default="test", choices=("train", "test"), help="split to score (default test)"
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="the run's test-time augmentation: average with mirrored images (unless the run "
        "trained without flips) and the --tta-shift views it trained with",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_data_option(p)
    p.set_defaults(run=_eval)


def _eval(args) -> int:
    from cnnlab.cli.progress import progress_bar
    from cnnlab.train.evaluate import evaluate, tta_label

    run = load_run_at(args.run_dir, args.data)
    views = tta_label(run.config)
    if args.tta and not views:
        print(
            "note: --tta: this run's test-time augmentation has no views (it trained without "
            "flips, and with --tta-shift 0): the plain evaluation",
            file=sys.stderr,
        )
    with progress_bar() as progress:
        result = evaluate(run, args.split, tta=args.tta and bool(views), progress=progress)
    if args.json:  # per_class: null for a class with no image (train.evaluate.class_accuracy)
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_evaluation(result, views)
    return 0


def print_evaluation(result, views: str = "flip") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # the views averaged: a digits run's TTA has no flip (it was labelled "flip TTA")
    tta = f", {views} TTA" if result.tta else ""
    console.print(
        f"{result.split} accuracy{tta}: [bold]{result.accuracy:.2%}[/bold] "
        f"on {result.n} images (cross-entropy {result.loss:.4f})"
    )
    table = Table(title="per-class accuracy")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("accuracy", justify="right")
    # acc None: no image of the class in the split, its count shown and no percentage
    rows = zip(result.classes, result.confusion, result.per_class, strict=True)
    for name, row, acc in rows:
        table.add_row(literal(name), str(sum(row)), "-" if acc is None else f"{acc:.2%}")
    console.print(table)
    confusion = Table(title="confusion matrix (rows: true class, columns: predicted)")
    confusion.add_column("")
    for i in range(len(result.classes)):
        confusion.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(result.classes, result.confusion, strict=True)):
        cells = [
            f"[bold]{v}[/bold]" if j == i else (str(v) if v else ".") for j, v in enumerate(row)
        ]
        confusion.add_row(literal(row_label(i, name)), *cells)
    console.print(confusion)


def row_label(index: int, name: str) -> str:
    """A confusion-matrix row: the class's column number and its name ('2 Pullover'), or
    the number alone when the name is that number (digits' '3', not '3 3')."""
    return name if name == str(index) else f"{index} {name}"
