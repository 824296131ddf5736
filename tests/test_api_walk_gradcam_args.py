"""gradcam(model, x, "layer1"), the layer where Captum's LayerGradCam(model, layer) and
pytorch-grad-cam's target_layers put it, is the target class in cnnlab's order: refused
naming the keyword (it was told 'target must be class indices, got 'layer1''). The keyword
call equals Captum's Grad-CAM at that layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import CnnlabError

captum = pytest.importorskip("captum.attr")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "compiled"])
def test_a_layer_name_given_as_the_target_is_refused_naming_the_keyword(wrap):
    model = _net()
    model = torch.compile(model) if wrap else model
    with pytest.raises(
        CnnlabError, match=r"give the layer by keyword: gradcam\(model, x, layer='1'\)"
    ):
        explain.gradcam(model, torch.randn(2, 3, 10, 10), "1")


def test_a_class_name_as_target_is_still_told_to_be_an_index():
    with pytest.raises(CnnlabError, match="target must be class indices"):
        explain.gradcam(_net(), torch.randn(2, 3, 10, 10), "cat")


def test_the_keyword_call_is_captums_grad_cam():
    model, x = _net(), torch.randn(2, 3, 10, 10)
    got = explain.gradcam(model, x, target=[1, 3], layer="1")
    ref = captum.LayerGradCam(model, model[1]).attribute(x, target=[1, 3], relu_attributions=True)
    ref = captum.LayerAttribution.interpolate(ref, (10, 10), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    assert torch.allclose(got, ref, atol=1e-5)
