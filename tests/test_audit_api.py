"""`cnnlab.train.train` with an nn.Module, as a Python user calls it: what a refusal tells
them to do works."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.data import load_splits
from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, train


def _flat_head_net() -> nn.Module:
    """A conv net whose Flatten + Linear head fixes its input at 1×16×16."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )  # fmt: skip


def test_a_module_for_other_images_is_told_how_to_convert_the_data_and_that_works():
    """Digits are 1×8×8; a module for 1×16×16 was refused naming only the layer that failed
    (the --input hint is the CLI's, for code). The message names the call that converts the
    data, and training on what it returns passes the check (truth: the module's own forward
    on a 16×16 batch)."""
    net = _flat_head_net()
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(SpecError, match=r"load_splits\(data, channels=C, size=\(H, W\)\)"):
        train(net, "digits", None, TrainConfig(epochs=1))
    config = TrainConfig(epochs=1, ema=None, bn_recalibrate=0, tta=False)
    result = train(net, load_splits("digits", channels=1, size=(16, 16)), None, config)
    assert 0 <= result["test_acc"] <= 1
