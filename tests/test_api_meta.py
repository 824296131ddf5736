"""A model on the meta device (built under torch.device("meta"), shapes without values) is
told so by every function that runs it, with the fix; it was told its images had the wrong
channels or size, or got torch's 'Tensor.item() cannot be called on meta tensors'."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain, inspect

pytestmark = pytest.mark.usefixtures("one_thread")

X, Y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
CALLS = {
    "gradcam": lambda m: explain.gradcam(m, X),
    "saliency": lambda m: explain.saliency(m, X),
    "feature_maps": lambda m: explain.feature_maps(m, X, ["0"]),
    "filters": lambda m: explain.filters(m),
    "linear_probe": lambda m: explain.linear_probe(m, (X, Y), (X, Y), epochs=1),
    "activation_maximization": lambda m: explain.activation_maximization(
        m, "0", [0], steps=1, input_size=(3, 8, 8)
    ),
    "effective_receptive_field": lambda m: explain.effective_receptive_field(m, "0", (3, 8, 8)),
    "dead_units": lambda m: diagnose.dead_units(m, X),
    "activation_stats": lambda m: diagnose.activation_stats(m, X),
    "gradient_flow": lambda m: diagnose.gradient_flow(m, [(X, Y)]),
    "train_mode_logits": lambda m: diagnose.train_mode_logits(m, X),
    "trace": lambda m: inspect.trace(m, X),
}


@pytest.mark.parametrize("call", CALLS)
def test_a_model_on_the_meta_device_is_told_to_get_values(call):
    with torch.device("meta"):
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 2),
        ).eval()  # fmt: skip
    with pytest.raises(explain.ExplainError) as error:
        CALLS[call](model)
    assert "meta device (0.weight" in str(error.value)
    assert "model.to_empty(device='cpu')" in str(error.value)
