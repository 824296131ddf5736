"""`cnnlab train --data FOLDER` draws the folder's reading on a terminal, as a task of its
training bar, before the first epoch (a folder of phone photos reads at 0.1-1.4 s an image,
and the terminal said nothing until then); piped, nothing is drawn and the output is what it
was. Truth: the test split's
size as load_splits reads it, and rich's own rendering on a terminal."""

from __future__ import annotations

import io
import json
import sys

import pytest

from cnnlab.cli import main
from cnnlab.data import load_splits
from folder_images import save

pytestmark = pytest.mark.usefixtures("one_thread")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def args(tmp_path):
    for c in ("cat", "dog"):
        for i in range(10):
            save(tmp_path / "imgs" / c / f"{i}.png", 20 * i + (c == "dog"))
    spec = {
        "name": "tiny",
        "input": [1, 6, 6],
        "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 2}],
    }
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    data = ["--data", str(tmp_path / "imgs"), "--epochs", "1", "--batch-size", "4"]
    return ["train", str(tmp_path / "tiny.json"), *data, "--out", str(tmp_path / "run")]


def test_train_draws_the_reading_of_a_folder_before_the_epochs(args, monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    assert main(args) == 0
    drawn = screen.getvalue()
    assert "reading images" in drawn
    assert drawn.index("reading images") < drawn.index("epoch 1/1")
    _, test = load_splits(args[args.index("--data") + 1], channels=1, size=(6, 6))
    assert f"{len(test)}/{len(test)}" in drawn  # the last split read, whole


def test_piped_train_draws_nothing(args, capsys):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reading images" not in out and "epoch 1/1  loss" in out
