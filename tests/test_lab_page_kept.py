"""The page of a lab resumed with another --only: `cnnlab lab --only floor --resume` on a
lab that already held floor and softmax wrote lab.html with floor alone, while results.json
kept both (a lab run in pieces, as the README's `--only` suggests, lost every earlier piece
from its page). Truth: the stored results.json; nothing is run (floor is kept)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.cli import main
from cnnlab.lab import load_results

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def test_a_resumed_lab_with_another_only_keeps_every_stored_experiment_on_its_page(tmp_path):
    data = json.loads(STORED.read_text())
    data["experiments"] = {k: data["experiments"][k] for k in ("softmax", "floor")}
    (tmp_path / "results.json").write_text(json.dumps(data))
    args = ["lab", "--only", "floor", "--resume", "--seeds", str(len(data["seeds"]))]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert sorted(load_results(tmp_path).experiments) == ["floor", "softmax"]
    page = (tmp_path / "lab.html").read_text()
    sections = [s.split('"')[0] for s in page.split('<section id="')[1:]]
    assert sections == ["floor", "softmax"]  # page order, not the file's
    assert page.count('class="badge holds"') == 4  # both verdicts, in the table and sections
