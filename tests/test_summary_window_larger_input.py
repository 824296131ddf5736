"""A window wider than the map a model brought whole gives it (a MONAI DenseNet-121's last
transition pool on 28×28 images) is fixed by a larger input image, and the summary says so
beside the window's own fixes. Truth: torch's own forward fails on that input and runs on
the larger one."""

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import SpecError


def shrinking_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.AvgPool2d(2), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4, 10),
    )  # fmt: skip


def test_a_window_wider_than_its_map_names_a_larger_input():
    model = shrinking_net()
    with pytest.raises(RuntimeError):  # torch: 4×4 -> 2×2 -> 1×1, and the last pool fails
        model(torch.zeros(1, 1, 4, 4))
    model(torch.zeros(1, 1, 8, 8))  # a larger image runs
    with pytest.raises(SpecError, match=r"layer 2 .*or a larger input image than 4×4"):
        cnnlab.summary(model, input_size=(1, 4, 4))
    assert cnnlab.summary(model, input_size=(1, 8, 8)).total_params == sum(
        p.numel() for p in model.parameters()
    )


def test_a_conv_wider_than_its_map_names_a_larger_input_as_a_pool_does():
    """A conv module's window is checked on the trace's conv path, apart from pools': it
    named only the kernel, dilation and padding. Truth: torch's forward fails on 4×4 and
    runs on 12×12 (12 → 6 → 3 → 1)."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3),
        nn.Flatten(), nn.Linear(4, 10),
    )  # fmt: skip
    with pytest.raises(RuntimeError):  # 4×4 -> 2×2 -> 1×1, and the 3×3 conv fails
        model(torch.zeros(1, 1, 4, 4))
    model(torch.zeros(1, 1, 12, 12))
    with pytest.raises(
        SpecError, match=r"layer 2 .*on a 1×1 map, .*or a larger input image than 4×4"
    ):
        cnnlab.summary(model, input_size=(1, 4, 4))
    assert cnnlab.summary(model, input_size=(1, 12, 12)).total_params == sum(
        p.numel() for p in model.parameters()
    )
