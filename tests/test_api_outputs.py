"""A model whose forward returns a transformers ModelOutput or a dict holding "logits" is
told the output= that picks them, and that output= gives Captum's maps."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from cnnlab import explain
from cnnlab.errors import ExplainError
from test_summary_zoo import make

pytestmark = pytest.mark.usefixtures("one_thread")


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))

    def forward(self, x):
        return {"logits": self.net(x), "pooled": x.mean((2, 3))}


@pytest.mark.parametrize("which", ["hf-resnet", "dict"])
def test_the_error_names_output_logits_and_that_equals_captum(which):
    if which == "dict":
        model, x = DictOut(), torch.randn(2, 3, 8, 8)
        model(x)  # the lazy layer's size
        kind = "a dict"
    else:
        (model, size), kind = make(which), "an ImageClassifierOutputWithNoAttention"
        x = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ExplainError) as error:
        explain.saliency(model, x)
    assert f'the model returns {kind}, not a logits tensor; pass output="logits"' in str(
        error.value
    )
    got = explain.saliency(model, x, target=[1, 0], output="logits")
    expected = Saliency(lambda x: model(x)["logits"]).attribute(
        x.clone().requires_grad_(True), target=[1, 0], abs=True
    )
    torch.testing.assert_close(got, expected.amax(1), atol=1e-6, rtol=1e-5)
