"""`cnnlab report RUN`: write RUN/report.html, one self-contained page about the run."""

from __future__ import annotations

import argparse
import sys
import time

from cnnlab.cli.rundata import RUN_HELP, add_data_option


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN/report.html: curves, results, Grad-CAM, features, health",
        description="Write one self-contained HTML report of a run (images inline, no network). "
        "Parts whose artefacts are missing say what is missing instead of failing.",
    )
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "--out",
        default=None,
        help="the page to write: an .html (or .htm) file, or a directory to write report.html "
        "in (default: RUN/report.html)",
    )
    p.add_argument(
        "--eval-images",
        type=int,
        default=None,
        help="test images to predict for the results section (default: 10000)",
    )
    add_data_option(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cnnlab.cli.progress import progress_bar
    from cnnlab.report import Budget, write_report

    start = time.perf_counter()
    budget = Budget() if args.eval_images is None else Budget(eval_images=args.eval_images)
    timings: dict[str, float] = {}
    missing: list[tuple[str, str]] = []
    with progress_bar() as progress:  # one step per part of the page
        out = write_report(
            args.run_dir, args.out, budget, timings, progress=progress, data=args.data,
            missing=missing,
        )  # fmt: skip
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB) in {time.perf_counter() - start:.1f} s")
    print(f"  {parts}")
    for line in missing_lines(missing):
        print(line, file=sys.stderr)
    return 0


def missing_lines(missing: list[tuple[str, str]]) -> list[str]:
    """The parts the page does not show, said on the terminal, one line per reason (their
    titles, then the page's note): the command said only 'wrote ...' of a page whose results,
    Grad-CAM and health said 'Not shown' (the run's data moved, its weights missing)."""
    if not missing:
        return []
    reasons: dict[str, list[str]] = {}
    for title, note in missing:
        reasons.setdefault(note.removeprefix("Not shown: "), []).append(title)
    count = f"{len(missing)} part" + ("s" if len(missing) > 1 else "")
    lines = [f"note: {count} of the page not shown:"]
    return lines + [f"  {', '.join(titles)}: {reason}" for reason, titles in reasons.items()]
