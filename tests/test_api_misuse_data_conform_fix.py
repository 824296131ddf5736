"""A module passed to train that does not take the images of an ImageSet made in Python is
told cnnlab.data.conform besides load_splits (which reads a data set by name, not the
user's arrays); the conversion named then trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab.data
from cnnlab.data import ImageSet, conform, load_dataset
from cnnlab.errors import DataError, SpecError
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


def test_conform_of_a_tensor_names_the_tensor_functions():
    """Messages name conform(images, ...): a tensor there is refused with the functions that
    take one, which give what conform gives the same images in an ImageSet."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 12, 10), dtype=torch.uint8, generator=g)
    with pytest.raises(DataError, match="conform takes an ImageSet, got a Tensor") as error:
        conform(images, channels=1, size=(8, 8))
    call = str(error.value).rsplit(": ", 1)[1].replace("C", "1").replace("(H, W)", "(8, 8)")
    got = eval(call, {"cnnlab": cnnlab, "images": images})
    assert got.shape == (3, 1, 8, 8)  # the fix, as written
    ds = ImageSet(images, torch.zeros(3, dtype=torch.int64), ("a",), "mine")
    assert torch.equal(got, conform(ds, channels=1, size=(8, 8)).images)
