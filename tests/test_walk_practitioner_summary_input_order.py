"""`cnnlab summary --model file.py:make --input 64,64,3` (the (H, W, C) order of TensorFlow
and PIL) on a model whose first conv takes 3 channels: the error named the input's size but not
its order, where `--input 3,64,64` was the fix. It says the order and the --input to give, and
that advice typed back runs. Truth: the command on the advised --input."""

from __future__ import annotations

import re

from cnnlab.cli import main

NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.features(x - self.mean)
        return self.fc(torch.flatten(self.pool(x), 1))


def make(classes=10):
    return Net(classes)
"""


def test_an_input_written_h_w_c_is_told_the_order_and_the_fix_runs(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NET)
    ref = f"{tmp_path / 'nets.py'}:make"
    assert main(["summary", "--model", ref, "--input", "64,64,3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    fix = re.search(r"is --input (\d+,\d+,\d+)", err)
    assert fix is not None and fix[1] == "3,64,64"
    assert main(["summary", "--model", ref, "--input", fix[1]]) == 0
