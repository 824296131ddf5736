"""A classifier whose head is a 1×1 conv and a pool with no flatten returns (B, K, 1, 1): the
refusal names the exact output= that fixes it (it said 'pass output= (a function) to reduce
them'), and with it saliency and Grad-CAM equal Captum's on the model with nn.Flatten()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import CnnlabError

captum = pytest.importorskip("captum.attr")
FIX = "output=lambda out: out.flatten(1)"


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.AdaptiveAvgPool2d(1)
    ).eval()


@pytest.mark.parametrize("call", ["saliency", "gradcam", "dead_units"])
def test_the_refusal_names_the_flatten(call):
    function = getattr(explain, call, None) or getattr(diagnose, call)
    with pytest.raises(CnnlabError, match=r"a head with no flatten: pass output=lambda out"):
        function(_net(), torch.randn(2, 3, 10, 10))


def test_a_map_of_scores_is_left_to_the_user():
    model = _net()[:3]  # (B, 4, 8, 8): which reduction is meant is the user's to say
    with pytest.raises(CnnlabError, match=r"pass output= \(a function\) to reduce them"):
        explain.saliency(model, torch.randn(2, 3, 10, 10))


def test_with_the_named_fix_saliency_and_gradcam_are_captums_on_the_flattened_model():
    model, x, t = _net(), torch.randn(2, 3, 10, 10), [0, 3]
    flat = nn.Sequential(*model, nn.Flatten()).eval()
    fix = eval(FIX.split("=", 1)[1])  # the very text the message gives
    sal = explain.saliency(model, x, target=t, output=fix)
    ref = captum.Saliency(flat).attribute(x, target=t, abs=True).amax(1)
    assert torch.allclose(sal, ref, atol=1e-6)
    cam = explain.gradcam(model, x, target=t, layer="1", output=fix)
    ref = captum.LayerGradCam(flat, flat[1]).attribute(x, target=t, relu_attributions=True)
    ref = captum.LayerAttribution.interpolate(ref, (10, 10), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    assert torch.allclose(cam, ref, atol=1e-5)
