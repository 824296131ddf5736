"""Grad-CAM and saliency on architectures written by others (MONAI, Hugging Face transformers,
ShuffleNet V2 after its paper) against Captum, the independent truth, run on a copy of each
model without in-place ops (cnnlab's map at a layer must be that layer's own, as on such a
copy; Captum on the in-place original would read overwritten tensors)."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from cnnlab.explain import gradcam, saliency
from cnnlab.inspect import default_layer
from test_explain_attribution import captum_gradcam
from test_summary_zoo import make

FAMILIES = ["monai-densenet121", "monai-resnet50", "hf-mobilenet-v2", "shufflenet-v2"]


def logits_of(out):
    """Hugging Face models return an output object; the others the logits."""
    return out.logits if hasattr(out, "logits") else out


class Logits(nn.Module):
    """What Captum needs: a module whose output is the (B, K) logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return logits_of(self.model(x))


def without_inplace(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return twin


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.mark.parametrize("family", FAMILIES)
def test_gradcam_and_saliency_equal_captum(family):
    model, (c, h, w) = make(family)
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
    layer = default_layer(model, x, output=logits_of)
    truth = Logits(without_inplace(model)).eval()
    target = truth(x).argmax(1)

    got = gradcam(model, x, output=logits_of)
    expected = captum_gradcam(truth, x, target, f"model.{layer}")
    assert got.shape == (2, h, w) and float(got.amax()) > 0
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)

    got = saliency(model, x, output=logits_of)
    expected = Saliency(truth).attribute(x, target=target, abs=True).amax(1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
