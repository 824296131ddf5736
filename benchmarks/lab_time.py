"""Time of the lab: wall and CPU seconds per experiment and in total, with the verdicts.

CPU seconds (this process's user + system time) are what the lab costs on its one torch
thread; wall seconds also count waiting for a core, so on a shared machine they say more
about the other processes than about the lab. Prints a Markdown table for BENCHMARKS.md.

    .venv/bin/python benchmarks/lab_time.py --quick              # issue 11: under 3 minutes
    .venv/bin/python benchmarks/lab_time.py --seeds 3 --out lab  # the full lab: under 45 min
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from cnnlab.lab import experiments, run_lab, write_page


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--out", help="keep results here (default: a temporary directory)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    chosen = experiments(args.only)
    marks: dict[str, tuple[float, float]] = {}

    def start(e):
        marks[e.name] = (time.perf_counter(), cpu_seconds())

    def done(e, entry, error):
        wall0, cpu0 = marks[e.name]
        marks[e.name] = (time.perf_counter() - wall0, cpu_seconds() - cpu0)

    out = args.out or tempfile.mkdtemp(prefix="cnnlab-lab-bench-")
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    results = run_lab(
        chosen, out, quick=args.quick, seeds=args.seeds, resume=args.resume,
        on_start=start, on_done=done,
    )  # fmt: skip
    write_page(out, chosen, results)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print("| experiment | verdict | wall s | CPU s |\n|---|---|---:|---:|")
    for e in chosen:
        entry = results.experiments.get(e.name)
        outcome = entry["verdict"]["outcome"] if entry else results.failed.get(e.name, "skipped")
        w, c = marks.get(e.name, (0.0, 0.0))
        print(f"| {e.name} | {outcome} | {w:.1f} | {c:.1f} |")
    mode = "quick" if args.quick else f"{args.seeds} seeds"
    print(
        f"| **total ({mode}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})** | | "
        f"{wall:.0f} | {cpu:.0f} |"
    )
    print(f"results and page in {out}")


if __name__ == "__main__":
    main()
