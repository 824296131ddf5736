"""The Python API leaves a notebook's model exactly as it was: parameters, buffers
(BatchNorm's running statistics), each module's train/eval flag, requires_grad, .grad, hooks
and the torch RNG, for a model in train mode too."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, inspect
from cnnlab.errors import ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")


def train_mode_net() -> nn.Module:
    """A BatchNorm2d, dropout and a BatchNorm1d head (which refuses one image in train mode)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 6), nn.BatchNorm1d(6),
    ).train()  # fmt: skip


def state(model: nn.Module) -> dict:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "rng": torch.get_rng_state(),
    }


def assert_same(before: dict, after: dict) -> None:
    assert after["training"] == before["training"]
    assert torch.equal(after["rng"], before["rng"])
    for name, value in before["tensors"].items():
        assert torch.equal(after["tensors"][name], value), name


@pytest.mark.parametrize("function", [inspect.trace, inspect.channel_dims])
def test_reading_layer_shapes_of_a_train_mode_model_moves_no_statistics(function):
    model, x = train_mode_net(), torch.randn(4, 3, 8, 8)
    before = state(model)
    function(model, x)
    assert_same(before, state(model))


def test_trace_of_a_train_mode_model_is_the_eval_mode_trace():
    model, x = train_mode_net(), torch.randn(4, 3, 8, 8)
    traced = inspect.trace(model, x)  # its BatchNorm1d refused the one image in train mode
    assert traced == inspect.trace(model.eval(), x)
    assert traced[-1] == ("7", (1, 6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_train_mode_logits_of_a_model_in_another_precision_names_the_dtype(dtype):
    # it raised torch's 'Input type (float) and bias type (c10::Half) should be the same'
    model = train_mode_net().to(dtype)
    with pytest.raises(ExplainError) as error:
        diagnose.train_mode_logits(model, torch.randn(4, 3, 8, 8))
    assert f"give the images as x.to({dtype})" in str(error.value)
