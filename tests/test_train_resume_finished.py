"""`train --resume` of a run that has trained all its epochs trains nothing: it says so. It
printed the result table alone, as after a training, so a user who meant to train longer
(`--resume` after the last epoch) took the table for more training. A run killed after its
last checkpoint, before its weights were written, is finished by the resume: no such note."""

from __future__ import annotations

import json

from cnnlab.cli import main

NET = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


def test_a_resume_of_a_finished_run_says_nothing_was_trained(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    args = ["train", "--model", f"{tmp_path / 'net.py'}:make", "--data", "digits", "--epochs",
            "1", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert "nothing was trained" not in capsys.readouterr().out
    rows = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "note: the run had already trained its 1 epoch, so nothing was trained" in out
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == rows
    assert main([*args, "--resume", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("nothing was trained" in n for n in notes)
    (tmp_path / "run" / "model.safetensors").unlink()  # as a kill after the last checkpoint
    assert main([*args, "--resume"]) == 0
    assert "nothing was trained" not in capsys.readouterr().out
    assert (tmp_path / "run" / "model.safetensors").is_file()
