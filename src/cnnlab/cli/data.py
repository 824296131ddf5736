"""`cnnlab data NAME|DIR`: where a data set was found, its splits, classes and statistics."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from cnnlab.data import download_fashion_mnist, load_dataset, normalization_stats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="show a data set: source, sizes, classes, mean/std; optionally download it",
        description="Load both splits of a data set (fashion-mnist, digits, shapes, or a "
        "folder with one sub-folder per class) and show what was found.",
    )
    p.add_argument("name", help="fashion-mnist | digits | shapes | DIR")
    p.add_argument("--root", help="directory holding the Fashion-MNIST files")
    p.add_argument(
        "--download",
        metavar="DIR",
        help="download the four official Fashion-MNIST files into DIR (MD5-checked) first",
    )
    p.add_argument("--url", help="base URL for --download (a mirror)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    root = args.root
    if args.download:
        kwargs = {"base_url": args.url} if args.url else {}
        root = download_fashion_mnist(args.download, **kwargs)
    info = {}
    for split in ("train", "test"):
        ds = load_dataset(args.name, split, root=root, strict=args.strict)
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
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    console = Console()
    table = Table(title=f"data: {args.name}")
    for column in ("split", "images", "C×H×W", "mean", "std", "source"):
        table.add_column(column, overflow="fold")
    for split, d in info.items():
        shape = "×".join(map(str, d["shape"]))
        mean, std = (", ".join(f"{v:.4f}" for v in d[k]) for k in ("mean", "std"))  # 0.2860
        table.add_row(split, f"{d['images']:,}", shape, mean, std, d["source"])
    console.print(table)
    counts = ", ".join(
        f"{c} {n}"
        for c, n in zip(info["train"]["classes"], info["train"]["class_counts"], strict=True)
    )
    console.print(f"classes (train counts): {counts}", highlight=False)
    for split, d in info.items():
        for path, reason in d["skipped"]:
            console.print(f"[yellow]skipped[/] ({split}) {path}: {reason}", highlight=False)
    return 0
