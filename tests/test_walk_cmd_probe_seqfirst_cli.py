"""`cnnlab probe` of a run trained from the user's CRNN file (`--model crnn.py:make`): its
sequence-first nn.LSTM gets a row (it had none, without a word), and a block whose output has
no row per image (its 8×8 map cut into four 4×4 windows, (4·B, C, 4, 4)) is named in one note
on stderr with the shape torch gives it, --json's stdout left the document alone."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.train import load_run
from tiny_nets import trained_from_code

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = """
from torch import nn


class Windows(nn.Module):
    def forward(self, f):
        c = f.shape[1]
        return f.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(-1, c, 4, 4)


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.win = Windows()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.rnn = nn.LSTM(8 * 4, 16)  # sequence-first: (W, B, C*H)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        b = len(x)
        rows = self.win(x)  # (4*B, 1, 4, 4): one row per window
        x = rows.reshape(b, 2, 2, 4, 4).permute(0, 1, 3, 2, 4).reshape(b, 1, 8, 8)
        f = self.conv(x)
        out, _ = self.rnn(f.permute(3, 0, 1, 2).flatten(2))
        return self.head(out[-1])


def make():
    return CRNN()
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    return trained_from_code(tmp_path_factory.mktemp("crnn"), CODE, input_size="1,8,8")


def test_probe_reads_the_lstm_and_names_the_windowed_block(run_dir, capsys):
    capsys.readouterr()
    assert main(["probe", str(run_dir), "--train", "60", "--test", "30", "--epochs", "2",
                 "--json"]) == 0  # fmt: skip
    said = capsys.readouterr()
    rows = [row["name"] for row in json.loads(said.out)["layers"]]
    assert rows == ["input", "conv.0", "conv.1", "conv.2", "rnn", "head"]
    run = load_run(run_dir)
    x = run.preprocess(run.dataset("train").images[:2])
    seen = {}
    hooks = [
        run.model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, o))
        for n in ("win", "rnn")
    ]
    with torch.no_grad():
        run.model.eval()(x)
    for h in hooks:
        h.remove()
    assert seen["rnn"][0].shape[1] == 2 and seen["win"].shape[0] == 8  # torch's truth
    notes = [line for line in said.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert f"win (its output for 2 images: {tuple(seen['win'].shape)})" in notes[0]
    assert "rnn" not in notes[0] and "conv" not in notes[0]
