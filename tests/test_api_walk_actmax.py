"""activation_maximization checks input_size as (C, H, W), as effective_receptive_field and
cnnlab.summary do: a (H, W) size was made into (1, H, W) images and refused as images of the
wrong channels ('expected input[1, 1, 16, 16] to have 3 channels'), a float size raised
torch's TypeError from inside the optimisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import CnnlabError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3)).eval()


@pytest.mark.parametrize("size", [(16, 16), (3, 16.0, 16), (3, 0, 16), [1, 3, 16, 16]])
def test_a_size_that_is_not_c_h_w_is_refused_as_erf_refuses_it(size):
    model = _net()
    with pytest.raises(CnnlabError) as erf:
        explain.effective_receptive_field(model, "2", size, n=2)
    with pytest.raises(CnnlabError) as actmax:
        explain.activation_maximization(model, "2", 0, steps=2, restarts=1, input_size=size)
    assert "input_size must be three positive integers (C, H, W)" in str(erf.value)
    assert str(actmax.value) == str(erf.value)


@pytest.mark.parametrize("size", [(3, 16, 16), [3, 16, 16], torch.Size([3, 16, 16])])
def test_a_c_h_w_size_makes_images_of_that_size(size):
    result = explain.activation_maximization(
        _net(), "2", [0, 1], steps=2, restarts=1, input_size=size
    )
    assert result.images.shape == (2, 3, 16, 16)
