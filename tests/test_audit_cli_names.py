"""The diagnose and probe tables name every layer in full: at 80 columns each row of a
model with Hugging Face-length names read "backbone.encoder_stage_…" (rich cut the column),
so no row said which layer it was. Truth: the model's own `named_modules()` names."""

from __future__ import annotations

import pytest

from cnnlab.cli import main

NET = """
from torch import nn


class Stage(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise_convolution_layer = nn.Conv2d(cin, cout, 3, padding=1)
        self.activation_function_after_it = nn.ReLU()

    def forward(self, x):
        return self.activation_function_after_it(self.depthwise_convolution_layer(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_stage_number_one = Stage(1, 4)
        self.encoder_stage_number_two = Stage(4, 4)

    def forward(self, x):
        return self.encoder_stage_number_two(self.encoder_stage_number_one(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Encoder()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        return self.head(self.backbone(x))


def make():
    return Net()
"""


def first_column(text: str) -> list[str]:
    """The first column of every rich table in `text`, a cell's folded lines joined."""
    names: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) < 2:
            continue
        if names and cells[0] and not any(cells[1:]):  # a folded cell goes on
            names[-1] += cells[0]
        elif cells[0]:
            names.append(cells[0])
    return names


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    (root / "longnames.py").write_text(NET)
    out = root / "run"
    argv = ["train", "--model", f"{root / 'longnames.py'}:make", "--data", "digits"]
    quick = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]
    assert main([*argv, "--out", str(out), *quick]) == 0
    return out


FULL = "backbone.encoder_stage_number_two.activation_function_after_it"


@pytest.mark.parametrize("command", [["diagnose"], ["probe", "--epochs", "2", "--layers", FULL]])
def test_every_layer_is_named_in_full(run, command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    assert main([command[0], str(run), *command[1:]]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert FULL in first_column(out)
