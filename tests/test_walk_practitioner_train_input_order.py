"""`cnnlab train --model file.py:make --input 16,16,3 --data FOLDER` (the (H, W, C) order):
the folder refused 16 channels ('channels must be 1 or 3 for an image folder, got 16') without
saying the --input was in the wrong order, as it says of a spec's input. Truth: the advised
--input is the model's (its first conv takes 3 channels; summary runs on it)."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from cnnlab.cli import main

NET = """
import torch
from torch import nn


def make(classes=2):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))
"""


def test_an_input_written_h_w_c_is_told_the_order(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NET)
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 255, (20 + i, 18, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / cls / f"{i}.png")
    ref = f"{tmp_path / 'nets.py'}:make"
    args = ["train", "--model", ref, "--data", str(tmp_path / "photos"), "--quiet",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main([*args, "--input", "16,16,3"]) == 2
    err = capsys.readouterr().err
    assert "channels must be 1 or 3" in err and len(err.strip().splitlines()) == 1
    fix = re.search(r"is --input (\d+,\d+,\d+)", err)
    assert fix is not None and fix[1] == "3,16,16"
    assert not (tmp_path / "run").exists()
    assert main(["summary", "--model", ref, "--input", fix[1]]) == 0
