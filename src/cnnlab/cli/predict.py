"""`cnnlab predict RUN IMAGE...`: the top-k classes of image files with a trained run."""

from __future__ import annotations

import json
import sys

from cnnlab.cli.notes import print_channel_note, print_frames_note
from cnnlab.cli.rundata import RUN_HELP, load_run_at
from cnnlab.cli.tables import literal
from cnnlab.errors import CnnlabError


def register(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes of image files or folders with a trained run")
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="PNG/JPEG/... files, or folders of them"
    )
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_predict)


def _predict(args) -> int:
    from cnnlab.cli.progress import progress_bar
    from cnnlab.data.folder import expand_folders, shown  # cnnlab.data brings torch
    from cnnlab.train.evaluate import predict, resize_note

    if args.top < 1:
        raise CnnlabError(f"--top must be at least 1, got {args.top}")
    run = load_run_at(args.run_dir)  # a changed model file accepted: said
    named, args.images = set(args.images), expand_folders(args.images)
    # a folder's unreadable file is skipped and named, as training skips it; one the user
    # named stays an error (a corrupt photo among a folder's stopped the whole command),
    # found before the folders' files are read and predicted
    skipped = [] if set(args.images) != named else None
    with progress_bar() as progress:
        predictions = predict(
            run, args.images, top=args.top, progress=progress, skipped=skipped, named=named
        )
    args.images = [p.source for p in predictions]
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        print_predictions(predictions)
    files = [(shown(p.source), p.size) for p in predictions]
    note = resize_note(files, run.input_shape[1:])
    if note:  # the file differs from what the model learned at: the one fact to know
        print(f"note: {note}", file=sys.stderr)
    print_channel_note(args.images, run.input_shape[0])
    print_frames_note(args.images)
    for _, why in skipped or []:
        print(f"skipped {why}", file=sys.stderr)
    return 0


def print_predictions(predictions) -> None:
    """A table on a terminal; whole paths, tab-separated, when piped (a table cuts paths)."""
    from cnnlab.data.folder import shown

    if not sys.stdout.isatty():
        for p in predictions:
            cells = [f"{name} {prob:.1%}" for name, prob in p.top]
            print("\t".join([shown(p.source), f"{p.size[0]}×{p.size[1]}", *cells]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="predictions (softmax probabilities)")
    table.add_column("image", overflow="fold")
    table.add_column("size", justify="right")
    for i in range(len(predictions[0].top)):
        table.add_column(f"top {i + 1}")
    for p in predictions:
        cells = [literal(f"{name} {prob:.1%}") for name, prob in p.top]
        table.add_row(literal(shown(p.source)), f"{p.size[0]}×{p.size[1]}", *cells)
    Console().print(table)
