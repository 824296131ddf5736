"""`cnnlab --help`, `cnnlab train --help` and a usage error: the working tree against an older
commit, each a fresh `cnnlab` process, rounds alternated (order flipped each round).

The old commit's `src/` is unpacked (`git archive`) into a temporary directory and put first
on PYTHONPATH, so the same `.venv/bin/cnnlab` script runs either version. CPU time (user +
system of the child, which load from other processes inflates less than wall time) and wall
time, min–median–max, and the ratio of the medians old / new (above 1: the tree is faster).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cli_startup.py b1847ed --rounds 7
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CNNLAB = ROOT / ".venv" / "bin" / "cnnlab"
COMMANDS = (["--help"], ["train", "--help"], ["train", "--no-such-option"])


def unpack(commit: str, into: Path) -> Path:
    """`src/` of `commit`, unpacked under `into`; the directory to put on PYTHONPATH."""
    tar = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True,
                         capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into / "src"


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(CPU s, wall s) of one `cnnlab ARGV` process; exit 0 (help) or 2 (usage error)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(CNNLAB), *argv], env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode in (0, 2), done.stderr.decode()[-500:]
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, wall


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{statistics.median(values):.2f}–{max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the commit to compare with, e.g. HEAD~1")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    new_env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        old_env = {**new_env, "PYTHONPATH": str(unpack(args.old, Path(tmp)))}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for i in range(args.rounds):
            for argv in COMMANDS:
                sides = [("old", old_env), ("new", new_env)]
                for side, env in sides if i % 2 == 0 else sides[::-1]:
                    times.setdefault((" ".join(argv), side), []).append(timed(argv, env))
    print(f"load average after: {os.getloadavg()[0]:.1f}; n = {args.rounds} per cell")
    for argv in COMMANDS:
        command = " ".join(argv)
        (old_cpu, old_wall), (new_cpu, new_wall) = (
            list(zip(*times[(command, side)], strict=True)) for side in ("old", "new")
        )
        ratio = statistics.median(old_cpu) / statistics.median(new_cpu)
        print(f"cnnlab {command}: CPU {spread(old_cpu)} -> {spread(new_cpu)} ({ratio:.1f}×); "
              f"wall {spread(old_wall)} -> {spread(new_wall)}")  # fmt: skip


if __name__ == "__main__":
    main()
