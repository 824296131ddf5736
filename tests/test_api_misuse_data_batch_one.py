"""A batch of one image through a BatchNorm with one value per channel (BatchNorm1d after
the pooling) is refused before a step, with the batch size to use: torch's 'Expected more
than 1 value per channel when training' came at the first step. A BatchNorm2d on larger maps
trains on one image per step as before."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.data import load_dataset
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, train


def net(*norm: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), *norm[:1], nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), *norm[1:], nn.Linear(8, 10),
    )  # fmt: skip


def test_a_batchnorm1d_head_refuses_one_image_per_step():
    model = net(nn.BatchNorm2d(8), nn.BatchNorm1d(8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=1, precision="fp32")
    with pytest.raises(ConfigError, match=r"batch of 1 image.*--batch-size 2 \(per rank\)"):
        train(model, "digits", None, config)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats untouched


def test_a_batchnorm2d_on_maps_trains_on_one_image_per_step():
    ds = load_dataset("digits", "train")
    small = ds.subset(torch.arange(40))
    config = TrainConfig(epochs=1, batch_size=1, precision="fp32", val_fraction=0.0)
    assert train(net(nn.BatchNorm2d(8)), small, None, config)["epochs"] == 1
