"""Imported weights that score no better than always guessing one class are told why that
most often happens (other images than at training: size, normalization) and which options
the import took from the data; weights that learned are not."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, train
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

NETS = """
from torch import nn

def make_net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
"""

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _guess_margin() -> float:
    """By hand: the most frequent test class's share + 3 standard deviations of a guesser."""
    counts = torch.bincount(load_dataset("digits", "test").labels)
    share, n = float(counts.max() / counts.sum()), int(counts.sum())
    return share + 3 * math.sqrt(share * (1 - share) / n)


def _weights(tmp_path, model) -> str:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return str(path)


@pytest.fixture
def source(tmp_path):
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    return parse_model_ref(f"{tmp_path}/nets.py:make_net")


def test_weights_at_chance_are_told_the_options_taken_from_the_data(tmp_path, source, capsys):
    torch.manual_seed(0)
    result = import_run(source, _weights(tmp_path, source.build()), tmp_path / "run", "digits")
    assert result["evaluation"]["accuracy"] <= _guess_margin()
    (note,) = result["notes"]
    assert "no better than always guessing" in note and "--input 1,8,8 (the data's)" in note
    weights = _weights(tmp_path, source.build())
    args = ["--model", source.reference, "--weights", weights, "--data", "digits"]
    code = main(["import", *args, "--input", "1,8,8", "--out", str(tmp_path / "again")])
    out = capsys.readouterr().out
    said = out.split("at training")[1]  # --input given: the note names only what was taken
    assert code == 0 and "note: test accuracy" in out and "--input" not in said


def test_weights_that_learned_get_no_note(tmp_path, source):
    torch.manual_seed(0)
    model = source.build()
    config = TrainConfig(epochs=3, batch_size=32, flip=False, tta=False, ema=None, precision="fp32")
    train(model, "digits", None, config)
    result = import_run(source, _weights(tmp_path, model), tmp_path / "run", "digits")
    assert result["evaluation"]["accuracy"] > _guess_margin()
    assert result["notes"] == []
