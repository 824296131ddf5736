"""docs/reliability.md's counts of what was tried are the tables the tests run: the atomic
writes a faulted run is killed at (3 faults each), the backends' errors sorted into a lost rank
or not, the start-up signal points, the resume changes and the image sizes of the one-answer
check (it said "5 + 3 + 1" of backend errors while the tests tried 8 + 5 + 1). The per-command
and run-file counts are checked in tests/test_docs.py."""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"


def _tests_module(name: str):
    """A module of tests/ imported by name (tests/ is no package)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "tests"))


def _row(starts: str) -> str:
    text = DOC.read_text()
    rows = [r for r in text.splitlines() if r.startswith(f"| {starts}")]
    assert len(rows) == 1, f"docs/reliability.md has {len(rows)} rows starting {starts!r}"
    return rows[0]


def test_the_backend_error_row_counts_the_tests_tables():
    ddp = _tests_module("test_ddp_faults")
    row = _row("what the backends raise for a lost peer")
    # + 1: test_outside_a_distributed_run_nothing_is_a_lost_rank
    assert f"| {len(ddp.LOST)} + {len(ddp.NOT_LOST)} + 1 |" in row, row


def test_the_start_up_row_counts_the_signal_points():
    points = _tests_module("test_faults_startup").POINTS
    assert f"| {len(points)} + 7 by hand" in _row("Ctrl-C or SIGTERM during start-up")


def test_the_resume_table_counts_the_changes_tried():
    changes = _tests_module("test_resume_changes").CHANGES
    assert "world size" in changes and "| 2 |" in _row("world size 2 → 1")  # + the real DDP one
    others = [name for name in changes if name != "world size"]
    assert f"| {len(others)} |" in _row("threads 1 → 2, precision fp32 → bf16, another torch")


def test_the_one_answer_row_counts_its_sizes():
    sides = _tests_module("test_faults_consistency").SIDES
    assert f"`tests/test_faults_consistency.py`, {len(sides)} sizes" in DOC.read_text()


@pytest.mark.usefixtures("one_thread")
def test_the_atomic_writes_of_the_faulted_run_are_as_many_as_the_row_says(tmp_path):
    """The run tests/test_faults.py kills at every atomic write (its TINY spec and CONFIG, 2
    epochs): the row's count of writes, and 3 faults at each."""
    from cnnlab.train import checkpoint, train

    faults = _tests_module("test_faults")
    calls = []
    original = checkpoint.atomic_write

    def counting(path, data):
        calls.append(os.path.basename(path))
        original(path, data)

    checkpoint.atomic_write = counting
    try:
        train(faults.TINY, "digits", tmp_path / "run", faults.CONFIG, checkpoint_seconds=3600)
    finally:
        checkpoint.atomic_write = original
    row = _row("a kill just before a file's rename")
    said = re.search(r"at each of the (\d+) atomic writes of a run \| (\d+) \|", row)
    assert said and said.groups() == (str(len(calls)), str(3 * len(calls))), calls
