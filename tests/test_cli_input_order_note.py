"""An input written (H, W, C) as TensorFlow does that still builds (`input: [32, 32, 3]` for an
RGB net: 32 channels of 32×3 images) gets a note on stderr saying how cnnlab reads it and
what to write; it was accepted without a word, the hint being given only when a layer failed.
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.design.build import build
from cnnlab.design.spec import load_spec

LAYERS = "layers: [{conv: {filters: 8, padding: same}}, relu, gap, {linear: 10}]"


def _summary(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["summary", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_channels_last_input_that_builds_gets_a_note(capsys):
    text = f"input: [32, 32, 3]\n{LAYERS}"
    model = build(load_spec(text))
    assert model[0].in_channels == 32  # torch's own conv: 32 channels, as the note says
    assert model(torch.zeros(1, 32, 32, 3)).shape == (1, 10)  # legal: no refusal
    code, out, err = _summary(capsys, text, "--json")
    assert code == 0
    assert json.loads(out)["input_size"] == [32, 32, 3]  # the JSON stays JSON
    assert err.splitlines() == [
        "note: input is [C, H, W], so [32, 32, 3] is 32 channels of 32×3 images; "
        "a 32×32 image with 3 channels is [3, 32, 32]"
    ]
    assert main(["summary", f"input: [3, 32, 32]\n{LAYERS}"]) == 0  # what it says to write


@pytest.mark.parametrize("size", ["3,32,32", "1,28,28", "2,600,3", "64,1000,8"])
def test_an_input_in_cnnlab_order_gets_no_note(capsys, size):
    code, _, err = _summary(capsys, f"input: [1, 8, 8]\n{LAYERS}", "--input", size)
    assert code == 0
    assert err == ""


def test_a_model_from_code_is_told_in_the_form_of_its_option(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\n"
        "def make_net():\n"
        "    return nn.Sequential(nn.Conv2d(28, 8, 3, padding=1), nn.ReLU(),"
        " nn.AdaptiveAvgPool2d(1),"
        " nn.Flatten(), nn.Linear(8, 10))\n"
    )
    code, _, err = _summary(capsys, "--model", f"{tmp_path}/nets.py:make_net", "--input", "28,28,1")
    assert code == 0
    assert err.strip().splitlines() == [
        "note: --input is C,H,W, so 28,28,1 is 28 channels of 28×1 images; "
        "a 28×28 image with 1 channel is --input 1,28,28"
    ], err


def test_training_a_channels_last_spec_says_the_order_with_the_channel_error(tmp_path, capsys):
    """`train` of `input: [28, 28, 1]` was told only 'cannot convert 1-channel images to 28
    channels (use 1 or 3)', which does not say the spec's input is in the wrong order."""
    spec = tmp_path / "hwc.yaml"
    spec.write_text(f"input: [28, 28, 1]\n{LAYERS}")
    argv = ["train", str(spec), "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "cannot convert 1-channel images to 28 channels" in line
    assert line.endswith(
        "; note: input is [C, H, W], so [28, 28, 1] is 28 channels of 28×1 images; "
        "a 28×28 image with 1 channel is [1, 28, 28]"
    )
    assert not (tmp_path / "r").exists()
