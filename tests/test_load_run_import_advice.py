"""load_run of a run trained from a Python object, opened without model=, names the
`cnnlab import` command for its code; its `--data` must work as written: a folder path with
a space stays one shell word, and a run trained on images given in Python (whose recorded
name is their source text) is told to name data a command reads, not that text."""

from __future__ import annotations

import re
import shlex

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.data import ImageSet, load_dataset
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train

CONFIG = TrainConfig(epochs=1, batch_size=8, precision="fp32", bn_recalibrate=0)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))


def _import_words(error: pytest.ExceptionInfo) -> list[str]:
    command = re.search(r"cnnlab import .*? --out NEW_RUN", str(error.value))
    assert command, str(error.value)
    return shlex.split(command.group(0))


def test_folder_with_a_space_is_one_shell_word(tmp_path):
    root = tmp_path / "my photos"
    for name, level in (("a", 10), ("b", 240)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), level + i, np.uint8)).save(root / name / f"{i}.png")
    train(_net(), load_dataset(str(root), "train"), tmp_path / "run", config=CONFIG)
    with pytest.raises(RunError) as error:
        load_run(tmp_path / "run")
    words = _import_words(error)
    assert words[words.index("--data") + 1] == str(root.resolve())


def test_images_given_in_python_are_not_named_as_data(tmp_path):
    ds = load_dataset("digits", "train")
    keep = ds.labels < 2
    mine = ImageSet(ds.images[keep], ds.labels[keep], ["zero", "one"], "my arrays")
    train(_net(), mine, tmp_path / "run", config=CONFIG)
    with pytest.raises(RunError) as error:
        load_run(tmp_path / "run")
    words = _import_words(error)
    assert "my arrays" not in words and "my" not in words
    assert words[words.index("--data") + 1] == "NAME|DIR"
