"""`cnnlab diagnose RUN`: dead ReLUs, gradient flow and activation statistics, with fixes."""

from __future__ import annotations

import argparse
import json
import sys

from cnnlab.cli.rundata import RUN_HELP, load_run_at
from cnnlab.cli.tables import column, literal
from cnnlab.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "diagnose",
        help="dead ReLU units, gradient flow, saturated activations of a trained run",
        description="Measure dead/sleeping ReLU units, per-layer gradient flow and activation "
        "statistics of a run's model on the first --limit images of its test split (or of "
        "--split and --data; gradient flow on the first 512 of them), and say what to try "
        "(notes §4.2-4.3).",
    )
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "--data",
        default=None,
        help="data set name or image-folder directory to use (default: the run's own data)",
    )
    p.add_argument(
        "--split", default="test", choices=("train", "test"), help="split to use (default: test)"
    )
    p.add_argument(
        "--limit", type=int, default=2000, help="at most this many images (default: 2000)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.1,
        metavar="SHARE",
        help="flag a layer whose share of dead units (channels never above 0 on any image) is "
        "above this, from 0 to 1 (default 0.1)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_run)


def _images(run, args: argparse.Namespace, progress=None):
    """(x, y): normalised float images (N, C, H, W) and labels, at most --limit of them;
    `progress`: an image folder's reading."""
    if args.data is None:
        images = run.dataset(args.split, progress=progress)
    else:
        from cnnlab.data import load_dataset

        c, h, w = run.input_shape
        images = load_dataset(args.data, args.split, channels=c, size=(h, w), progress=progress)
        _check_classes(run, images.classes, args.data)
    n = min(args.limit, len(images.labels))
    return run.preprocess(images.images[:n]), images.labels[:n]


def _check_classes(run, classes: tuple[str, ...], data: str) -> None:
    """The labels of --data index the model's outputs: another number of classes is refused
    (`--data shapes` on a digits run ran its 4 labels through 10 outputs without a word);
    the same number under other names is said, as the labels are read by position."""
    if len(classes) != len(run.classes):
        raise ConfigError(
            f"--data {data} has {len(classes)} class{'es' if len(classes) != 1 else ''} "
            f"({', '.join(classes)}); the run "
            f"classifies {len(run.classes)} ({', '.join(run.classes)}): give images of its classes"
        )
    if tuple(classes) != run.classes:
        print(
            f"note: --data {data} names its classes {', '.join(classes)}; the run "
            f"{', '.join(run.classes)}: labels are read by position",
            file=sys.stderr,
        )


def _batches(x, y, size: int = 256, limit: int = 512) -> list:
    """Gradient flow on the first `limit` images: enough to see the trend, cheap."""
    return [(x[i : i + size], y[i : i + size]) for i in range(0, min(len(x), limit), size)]


def _run(args: argparse.Namespace) -> int:
    from cnnlab import diagnose
    from cnnlab.cli.progress import progress_bar

    if args.limit < 1:
        raise ConfigError(f"--limit must be a number of images >= 1, got {args.limit}")
    if not 0 <= args.threshold <= 1:  # the library's check, named as the option typed
        raise ConfigError(f"--threshold is a share of units, from 0 to 1; got {args.threshold}")
    run = load_run_at(args.run_dir)  # a changed model file accepted: said
    with progress_bar() as progress:  # the images read, then three passes, each its own bar
        x, y = _images(run, args, progress)
        dead = diagnose.dead_units(run.model, x, threshold=args.threshold, progress=progress)
        acts = diagnose.activation_stats(run.model, x, progress=progress)
        train = diagnose.train_mode_logits(run.model, x)  # else: aux logits in train mode
        flow = diagnose.gradient_flow(run.model, _batches(x, y), train=train, progress=progress)
    found = diagnose.findings(dead, flow, acts)
    if args.json:
        result = {
            "dead_units": dead.to_dict(),
            "gradient_flow": flow.to_dict(),
            "activation_stats": acts.to_dict(),
            "findings": [vars(f) for f in found],
        }
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        _print_tables(dead, flow, acts, found)
    return 0


def _print_tables(dead, flow, acts, found: list) -> None:
    from rich.console import Console
    from rich.table import Table

    from cnnlab.diagnose import hidden_line

    console = Console()
    t = Table(title=f"Dead units ({dead.samples} images; dead = never > 0 on any of them)")
    for col in ("layer", "activation", "channels", "dead", "dead %", "sparsity", "flag"):
        t.add_column(col, **column(col in ("layer", "activation", "flag")))
    for l in dead.layers:
        # behind frozen weights no training step made these units nor can revive them
        flag = ("[red]DEAD[/red]" if l.flagged else "") + (" (frozen)" if l.frozen else "")
        t.add_row(
            literal(l.name),
            literal(l.kind),
            str(l.channels),
            str(l.dead),
            f"{l.dead_share:.1%}",
            f"{l.sparsity:.1%}",
            flag,
        )
    console.print(t)
    if dead.hidden:
        console.print(hidden_line(dead.hidden), markup=False, highlight=False)

    console.print(_flow_table(flow))

    t = Table(
        title="Activation statistics (saturated: sigmoid within 0.01 of 0/1, tanh of ±1, "
        "hardtanh at its bounds, relu6 at its cap)"
    )
    for col in ("layer", "activation", "mean", "std", "min", "max", "saturated"):
        t.add_column(col, **column(col in ("layer", "activation")))
    for l in acts.layers:
        sat = "-" if l.saturated is None else f"{l.saturated:.1%}"
        stats = (f"{l.mean:+.3f}", f"{l.std:.3f}", f"{l.min:.2f}", f"{l.max:.2f}", sat)
        kind = f"{l.kind} (gate)" if l.gate else l.kind  # saturated by design: no finding
        t.add_row(literal(l.name), literal(kind), *stats)
    console.print(t)

    if not found:  # with modules not looked into, only what was seen is vouched for
        seen = " in the layers looked into" if dead.hidden else ""
        console.print(f"[green]No problems found{seen}.[/green]")
    for f in found:
        console.print(literal((f.code, "red"), f": {f.message}\n  try: {f.fix}"))


def _flow_table(flow):
    """The gradient flow as a rich Table: a row per weighted layer, a note where a layer is
    frozen or its weight tied to other modules."""
    from rich.table import Table

    flags = [
        name for name, on in (("VANISHING", flow.vanishing), ("EXPLODING", flow.exploding)) if on
    ]
    if flow.no_gradient:
        title = "Gradient flow [red](no gradient flows: every weight gradient is exactly 0)[/red]"
    else:
        title = f"Gradient flow (first/last L2 = {flow.ratio:.3g})" + (
            f" [red]{' '.join(flags)}[/red]" if flags else ""
        )
    if not flow.train:  # the model gives more than the logits in train mode (aux heads)
        title += ", eval mode: in train mode the model returns more than the logits"
    if any(l.frozen for l in flow.layers):
        title += " (frozen layers measured, not judged)"
    t = Table(title=title)
    # a note only where a layer has one: frozen, or a weight tied to other modules
    noted = any(l.note for l in flow.layers)
    for col in ("layer", "module", "mean |g|", "L2", "max |g|", *(("note",) if noted else ())):
        t.add_column(col, **column(col in ("layer", "module", "note")))
    for l in flow.layers:
        numbers = (f"{l.mean_abs:.2e}", f"{l.l2:.2e}", f"{l.max:.2e}")
        notes = (literal(l.note),) if noted else ()
        t.add_row(literal(l.label), literal(l.kind), *numbers, *notes)
    return t
