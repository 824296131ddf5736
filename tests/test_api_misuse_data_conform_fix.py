"""A module passed to train that does not take the images of an ImageSet made in Python is
told cnnlab.data.conform besides load_splits (which reads a data set by name, not the
user's arrays); the conversion named then trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.data import ImageSet, conform, load_dataset
from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, train


def rgb_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def test_an_imageset_of_other_channels_is_told_conform():
    tr = load_dataset("digits", "train")
    mine = ImageSet(tr.images, tr.labels, tr.classes, "my digits")  # 1×8×8
    with pytest.raises(SpecError, match=r"conform\(images, channels=C, size=\(H, W\)\)"):
        train(rgb_net(), mine, None, TrainConfig(epochs=1, batch_size=64, precision="fp32"))
    rgb = conform(mine, channels=3)
    result = train(rgb_net(), rgb, None, TrainConfig(epochs=1, batch_size=64, precision="fp32"))
    assert result["epochs"] == 1
