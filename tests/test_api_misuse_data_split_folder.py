"""Training on DIR/train or DIR/test of a DIR/train + DIR/test layout is noted with the fix
(give DIR): DIR/train alone held 20 % of itself out as test images and left DIR/test unread,
and DIR/test trained on the images DIR keeps for testing; both without a word. DIR itself,
and a folder named train/ without a test/ beside it, get no note."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.train import TrainConfig, train

CONFIG = TrainConfig(epochs=1, batch_size=4, precision="fp32", flip=False)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 2),
    )  # fmt: skip


@pytest.fixture
def layout(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 5)):
        for i, name in enumerate(("a", "b")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = (rng.integers(0, 60, (8, 8)) + 180 * i).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "data" / split / name / f"{j}.png")
    return tmp_path / "data"


def _said(data):
    notes = train(net(), str(data), None, CONFIG)["notes"]
    return [n for n in notes if "give " in n and "optimizer step" not in n]  # the folder's


def test_the_train_folder_alone_is_noted(layout):
    (note,) = _said(layout / "train")
    assert note == (
        f"{layout / 'test'} was not read; the test images were held out of train/: give "
        f"{layout} as the data to train on train/ and test on test/"
    )


def test_the_test_folder_is_noted(layout):
    (note,) = _said(layout / "test")
    assert note.startswith(f"the model was trained on test/, the images {layout} keeps for")


def test_the_layout_itself_and_a_lone_train_folder_get_no_note(layout):
    assert not _said(layout)
    (layout / "test").rename(layout / "elsewhere")
    assert not _said(layout / "train")
