"""A model whose logits autograd cannot follow back (torch.ao's dynamic quantization: its
quantized Linear has no backward, and autograd only warns) is told so by saliency and
Grad-CAM; they raised AttributeError on the None gradient. What needs no gradient works."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")


def quantized() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "gradcam"])
def test_attribution_of_a_quantized_head_is_told_it_has_no_backward(method):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ExplainError, match="an op without a backward.*quantized"):
        getattr(explain, method)(quantized(), x)


@pytest.mark.filterwarnings("ignore")
def test_dead_units_of_a_quantized_model_are_torchs():
    model, x = quantized(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = (model[1](model[0](x)) <= 0).float().mean().item()
    assert diagnose.dead_units(model, x).layers[0].sparsity == pytest.approx(expected)
