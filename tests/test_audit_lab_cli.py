"""What `cnnlab lab` prints: a quick lab's table says its verdicts are a smoke run, as its
page does, since a learner reads the terminal first (a quick 'does not hold' on 2,000 images
and 3 epochs is not the notes being wrong)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from cnnlab.cli.lab import _print_table
from cnnlab.lab import experiments, load_results

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def printed(quick: bool, tmp_path: Path) -> str:
    data = json.loads(STORED.read_text())
    data["quick"] = quick
    (tmp_path / "results.json").write_text(json.dumps(data))
    console = Console(record=True, width=200)
    _print_table(console, experiments(), load_results(tmp_path))
    return console.export_text()


def test_a_quick_table_says_it_is_a_smoke_run(tmp_path):
    assert "smoke run, not evidence" in printed(True, tmp_path)
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    assert "smoke run" not in printed(False, tmp_path)
