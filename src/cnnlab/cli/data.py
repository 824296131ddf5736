"""`cnnlab data NAME|DIR`: where a data set was found, its splits, classes and statistics."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from cnnlab.cli.notes import print_name_note, stray_note
from cnnlab.cli.tables import literal
from cnnlab.errors import CnnlabError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="show a data set: source, sizes, classes, mean/std; optionally download it",
        description="Load both splits of a data set (fashion-mnist, digits, shapes, or a "
        "folder with one sub-folder per class) and show what was found.",
    )
    p.add_argument("name", metavar="NAME", help="fashion-mnist | digits | shapes | DIR")
    p.add_argument("--root", help="directory holding the Fashion-MNIST files")
    p.add_argument(
        "--download",
        metavar="DIR",
        help="download the four official Fashion-MNIST files into DIR (MD5-checked) first",
    )
    p.add_argument(
        "--url", help="base URL for --download, a mirror (default: Fashion-MNIST's own host)"
    )
    p.add_argument(
        "--size",
        metavar="H[xW]",
        help="resize every image to cover H×W, then center-crop (as training does)",
    )
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert to 1 (gray) or 3 (RGB)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_run)


# Why --download has nothing to fetch for the other sources.
_NOTHING_TO_DOWNLOAD = {
    "digits": "it ships with scikit-learn",
    "shapes": "it is drawn by cnnlab",
}


def _check_options(args: argparse.Namespace) -> None:
    """--url, --download and --root are Fashion-MNIST's: elsewhere they were ignored, or
    Fashion-MNIST was downloaded and then another set shown."""
    from cnnlab.data.sets import dataset_name  # here, not at the top: cnnlab.data brings torch

    if args.url and not args.download:
        raise CnnlabError("--url is the mirror --download uses: give --download DIR too")
    key = dataset_name(args.name)
    if args.download and key != "fashion-mnist":
        why = _NOTHING_TO_DOWNLOAD.get(key, "a folder is read where it is")
        raise CnnlabError(
            f"--download is for fashion-mnist, not {args.name!r}: {why}, nothing to download; "
            "drop it"
        )
    if args.root and key != "fashion-mnist":
        raise CnnlabError(f"--root is for fashion-mnist, not {args.name!r}: drop it")


def _run(args: argparse.Namespace) -> int:
    # imported here, not at the top: cnnlab.data brings torch, which the parser (every
    # command's --help) does without
    from rich.console import Console
    from rich.table import Table

    from cnnlab.cli.progress import progress_bar
    from cnnlab.data import download_fashion_mnist, load_splits, normalization_stats

    _check_options(args)
    print_name_note(args.name)
    root = args.root
    if args.download:
        kwargs = {"base_url": args.url} if args.url else {}
        root = download_fashion_mnist(args.download, **kwargs)
    size = _size(args.size) if args.size else None
    options = {"root": root, "strict": args.strict, "channels": args.channels, "size": size}
    with progress_bar() as progress:  # an image folder's files, read one by one
        train, test = load_splits(args.name, **options, progress=progress)  # test: train's shape
    info = {}
    for split, ds in (("train", train), ("test", test)):
        if ds is None:
            continue
        mean, std = normalization_stats(ds)
        info[split] = {
            "source": ds.source,
            "images": len(ds),
            "shape": list(ds.shape),
            "classes": list(ds.classes),
            "class_counts": ds.class_counts(),
            "mean": [round(m, 4) for m in mean],
            "std": [round(s, 4) for s in std],
            "skipped": [list(s) for s in ds.skipped],
            "converted": len(ds.converted),
            "conversions": conversions(ds.converted),
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    console = Console()
    table = Table(title=literal(f"data: {args.name}"))
    for column in ("split", "images", "C×H×W", "mean", "std", "source"):
        table.add_column(column, overflow="fold")
    for split, d in info.items():
        shape = "×".join(map(str, d["shape"]))
        mean, std = (", ".join(f"{v:.4f}" for v in d[k]) for k in ("mean", "std"))  # 0.2860
        table.add_row(split, f"{d['images']:,}", shape, mean, std, literal(d["source"]))
    console.print(table)
    counts = ", ".join(
        f"{c} {n}"
        for c, n in zip(info["train"]["classes"], info["train"]["class_counts"], strict=True)
    )
    console.print(literal(f"classes (train counts): {counts}"))
    _notes(console, info, test)
    _stray_note(console, args.name, train)
    return 0


def _stray_note(console, name: str, train) -> None:
    """`cnnlab data DIR` with photos put in DIR itself beside the class folders said nothing
    of them: they were read by no class, and training went on without them."""
    note = stray_note(name, "in no class") if train is not None else None
    if note:
        console.print(literal(("not read", "yellow"), f": {note}"))


def conversions(converted) -> dict[str, int]:
    """How many images each change touched: {"RGB->L": 40, "resized": 52} from a folder's
    `(path, "RGB->L, 41x102->32x32")` list (a colour folder read as gray is said, not hidden
    in a count)."""
    counts: dict[str, int] = {}
    for _, change in converted:
        for part in change.split(", "):
            # "41x102->32x32" is a size; a mode may start with a digit too ("1->L", bilevel)
            kind = "resized" if re.fullmatch(r"\d+x\d+->\d+x\d+", part) else part
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _notes(console, info: dict, test) -> None:
    """What the table cannot show: conversions, skipped files, a class with no test image, no
    test split."""
    for split, d in info.items():
        if d["conversions"]:
            shown = ", ".join(f"{n} {kind}" for kind, n in sorted(d["conversions"].items()))
            console.print(f"converted ({split}): {shown}", highlight=False)
    for split, d in info.items():
        for path, reason in d["skipped"]:
            console.print(literal(("skipped", "yellow"), f" ({split}) {path}: {reason}"))
    absent = (
        [c for c, n in zip(test.classes, test.class_counts(), strict=True) if not n] if test else []
    )
    if absent:  # eval and the report measure no accuracy of these classes
        fix = (
            f"add its images to {test.source}/<class>/"
            if Path(test.source).name == "test"  # a DIR/train + DIR/test layout
            else "a folder's 20 % hold-out takes a class's images from its third image on (or "
            "give DIR/train/ and DIR/test/)"
        )
        them = "it" if len(absent) == 1 else "them"
        console.print(
            literal(
                ("no test image", "yellow"),
                f" of {', '.join(absent)}: no accuracy is measured for {them}; {fix}",
            )
        )
    if test is None:
        console.print(
            "[yellow]no test split[/]: every class has fewer than 3 images, too few to hold "
            "20 % out; training will report validation accuracy only",
            highlight=False,
        )


def _size(text: str) -> tuple[int, int]:
    """'28' -> (28, 28); '32x48' -> (32, 48)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else map(int, parts)
    except ValueError:
        raise CnnlabError(f"--size {text!r}: give H or HxW in pixels, e.g. 28 or 32x48") from None
    if not (0 < h <= 8192 and 0 < w <= 8192):
        raise CnnlabError(f"--size {text!r}: each side must be 1..8192 pixels")
    return h, w
