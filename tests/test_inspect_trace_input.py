"""inspect.trace checks its images as layer_calls does (`check_images`): a NumPy array raised
AttributeError 'clone' from deep inside, and an empty batch gave shapes for no image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain import ExplainError
from cnnlab.inspect import layer_calls, trace


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_trace_refuses_what_layer_calls_refuses_with_its_words():
    model, x = _net(), np.zeros((1, 3, 16, 16), np.float32)
    for bad in (x, torch.zeros(0, 3, 16, 16), torch.full((1, 3, 16, 16), float("nan"))):
        with pytest.raises(ExplainError) as got:
            trace(model, bad)
        with pytest.raises(ExplainError) as truth:
            layer_calls(model, bad)
        assert str(got.value) == str(truth.value)
    assert trace(model, torch.from_numpy(x)) == [
        ("0", (1, 4, 14, 14)), ("1", (1, 4, 14, 14)), ("2", (1, 4, 1, 1)), ("3", (1, 4))
    ]  # fmt: skip
