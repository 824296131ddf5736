"""cnnlab.summary of the working tree against an older commit's, in one process, call by call.

The old commit's `src/cnnlab` is unpacked (`git archive`) into a temporary directory as the
package `cnnlab_old` (its imports and lazy-import names rewritten), so both versions run in
this process on the same model: calls alternate old, new (the order flipped each pair), each
timed in thread CPU time, which load from other processes inflates less than wall time. Per
family: each version's median, and the median and quartiles of the per-pair ratios old / new
(above 1: the working tree is faster). An A/A run (HEAD, the tree unchanged) shows what a
run resolves: medians 0.99-1.02, quartiles ±5-13 % on two cores shared with other work.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/summary_ab.py HEAD~1 --pairs 200 \
        --only hf-mobilenet-v2 ghostnet [--wall]
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
_IMPORT = re.compile(r"\b(from|import) cnnlab\b")
_NAMED = re.compile(r"([\"'])cnnlab\.")  # lazy imports by name ("cnnlab.design.summary")


def unpack_old(commit: str, into: Path) -> None:
    """`src/cnnlab` of `commit` as the package `into/cnnlab_old`."""
    tar = subprocess.run(["git", "archive", commit, "src/cnnlab"], cwd=ROOT, check=True,
                         capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    (into / "src" / "cnnlab").rename(into / "cnnlab_old")
    for path in (into / "cnnlab_old").rglob("*.py"):
        text = _IMPORT.sub(r"\1 cnnlab_old", path.read_text())
        path.write_text(_NAMED.sub(r"\1cnnlab_old.", text))


def compare(old, new, model, size, pairs: int, clock) -> tuple[float, float, list[float]]:
    """Medians of old's and new's times and the per-pair ratios, calls alternated."""
    a, b = old(model, size), new(model, size)
    if (a.total_params, a.total_macs, len(a.rows)) != (b.total_params, b.total_macs, len(b.rows)):
        raise SystemExit("the two versions disagree on the totals")
    times: dict = {old: [], new: []}
    for i in range(pairs + 2):  # two warm-up pairs
        for summary in (old, new) if i % 2 else (new, old):
            start = clock()
            summary(model, size)
            times[summary].append(clock() - start)
    t_old, t_new = times[old][2:], times[new][2:]
    ratios = [o / n for o, n in zip(t_old, t_new, strict=True)]
    return statistics.median(t_old), statistics.median(t_new), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the older commit (HEAD: an A/A run)")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--only", nargs="+", required=True, help="family names")
    parser.add_argument("--wall", action="store_true", help="wall time, not thread CPU time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from test_summary_zoo import make

    clock = time.perf_counter if args.wall else time.thread_time
    with tempfile.TemporaryDirectory() as tmp:
        unpack_old(args.commit, Path(tmp))
        sys.path.insert(0, tmp)
        from cnnlab_old import summary as old

        from cnnlab import summary as new

        for name in args.only:
            model, size = make(name, full=True)
            t_old, t_new, ratios = compare(old, new, model, size, args.pairs, clock)
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print(f"{name:24s} old {t_old * 1e3:6.2f} ms  new {t_new * 1e3:6.2f} ms  per-pair "
                  f"ratio median {statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}, "
                  f"n = {len(ratios)})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
