"""One image per class is told that no val_fraction holds one out, and to use
val_fraction 0: it was told 'raise val_fraction', which cannot help (a class keeps its last
image for training)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.data import load_dataset, train_val_split
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, train


def net(*norm: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), *norm[:1], nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), *norm[1:], nn.Linear(8, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def one_per_class():
    ds = load_dataset("digits", "train")
    first = torch.stack([torch.nonzero(ds.labels == c)[0, 0] for c in range(10)])
    return ds.subset(first)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_one_image_per_class_is_told_val_fraction_0(one_per_class, fraction):
    with pytest.raises(DataError, match="no class has a second image to hold out: use val_fr"):
        train_val_split(one_per_class, fraction)


def test_one_image_per_class_trains_without_validation(one_per_class):
    config = TrainConfig(epochs=1, batch_size=2, precision="fp32", val_fraction=0.0)
    assert "val_acc" not in train(net(), one_per_class, None, config)


def test_two_images_in_a_class_still_say_raise_val_fraction():
    ds = load_dataset("digits", "train")
    zeros, ones = torch.nonzero(ds.labels == 0)[:2, 0], torch.nonzero(ds.labels == 1)[:1, 0]
    three = ds.subset(torch.cat([zeros, ones]))
    with pytest.raises(DataError, match="raise val_fraction or use more data"):
        train_val_split(three, 0.1)  # round(0.3) = 0 images
    assert len(train_val_split(three, 0.2)[1]) == 1  # raising it holds one out, as told
