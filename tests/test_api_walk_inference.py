"""Images made under torch.inference_mode() (a notebook's predict cell, then an explain
cell) are explained as any images are: saliency and Grad-CAM raised torch's 'Setting
requires_grad=True on inference tensor outside InferenceMode is not allowed'. Each equals
Captum's on the same images made outside inference mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain

captum = pytest.importorskip("captum.attr")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    ).eval()  # fmt: skip


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    plain = torch.randn(3, 3, 12, 12)
    with torch.inference_mode():
        made = plain * 1.0
    assert made.is_inference() and not plain.is_inference()
    return made, plain


def test_saliency_of_inference_images_is_captums():
    model, (made, plain) = _net(), _images()
    got = explain.saliency(model, made, target=[0, 1, 4])
    ref = captum.Saliency(model).attribute(plain, target=[0, 1, 4], abs=True).amax(1)
    assert torch.allclose(got, ref, atol=1e-6)
    assert made.is_inference()  # the caller's images are left as they were


def test_gradcam_of_inference_images_is_captums():
    model, (made, plain) = _net(), _images()
    got = explain.gradcam(model, made, target=[0, 1, 4])  # its default layer: "4"
    ref = captum.LayerGradCam(model, model[4]).attribute(
        plain, target=[0, 1, 4], relu_attributions=True
    )
    ref = captum.LayerAttribution.interpolate(ref, (12, 12), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    assert torch.allclose(got, ref, atol=1e-5)
