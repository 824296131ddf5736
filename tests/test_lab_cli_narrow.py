"""`cnnlab lab`'s verdicts in an 80-column terminal: each sentence gets the terminal's width
(a heading line per experiment, the sentence below it), not a table column a quarter as wide:
the quick lab's 14 sentences took 305 lines at 24 characters a line. Wide terminals keep the
table (tests/test_lab_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from cnnlab.cli.lab import _print_table
from cnnlab.lab import experiments, load_results

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def printed(tmp_path: Path, width: int, quick: bool = True) -> tuple[str, dict]:
    data = json.loads(STORED.read_text())
    data["quick"] = quick
    (tmp_path / "results.json").write_text(json.dumps(data))
    results = load_results(tmp_path)
    console = Console(record=True, width=width)
    _print_table(console, experiments(), results)
    return console.export_text(), results.experiments


def test_an_80_column_terminal_gets_each_sentence_at_full_width(tmp_path):
    text, stored = printed(tmp_path, 80)
    flat = " ".join(text.split())
    chars = 0
    for e in experiments():
        verdict = stored[e.name]["verdict"]
        chars += len(verdict["meaning"])
        assert " ".join(verdict["meaning"].split()) in flat, e.name
        assert f"{e.name} ({e.section}): {verdict['outcome']}" in flat, e.name
    lines = [line for line in text.splitlines() if line.strip()]
    # A sentence line holds at least 60 of its characters (80 columns less the indent and
    # wrapping), plus one heading line per experiment, plus the title and the caption.
    assert len(lines) <= chars / 60 + len(stored) + 5, len(lines)
    assert "smoke run, not evidence" in flat


def test_a_wide_terminal_keeps_the_table(tmp_path):
    text, _ = printed(tmp_path, 200, quick=False)
    assert "what it means" in text and "┃ experiment" in text
