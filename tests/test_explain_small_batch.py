"""Grad-CAM and saliency on a small batch run on the model itself: the inference copy (fx
trace, folded BatchNorm, channels-last weights) costs more than it saves there (one 224²
image on a ResNet-18: 0.83x). Above `SMALL_BATCH` pixels the copy is used. Truth: Captum's
maps on either side of the line, and whether the copy was built."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

import cnnlab.inspect.fast as fast
import test_explain_speed_passes as speed_passes
from cnnlab.explain import gradcam, saliency


def small_cnn() -> nn.Module:
    net = speed_passes.small_cnn()
    for m in net:
        if isinstance(m, nn.BatchNorm2d):  # statistics that folding must carry
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


def captum_gradcam(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """LayerGradCam (the paper's ReLU) + bilinear interpolate, each image divided by its max."""
    t = model(x).argmax(1)
    cam = LayerGradCam(model, model[5]).attribute(x, target=t, relu_attributions=True)
    cam = F.relu(LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0])
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp(min=1e-30), cam)


@pytest.fixture
def copies(monkeypatch) -> list[int]:
    """The batch sizes for which an inference copy was built."""
    built: list[int] = []
    original = fast.inference_copy

    def counted(model, keep=None, channels_last=False):
        built.append(1)
        return original(model, keep, channels_last)

    monkeypatch.setattr(fast, "inference_copy", counted)
    return built


@pytest.mark.parametrize("line", [fast.SMALL_BATCH, 0])  # 0: every batch uses the copy
def test_gradcam_equals_captum_with_and_without_the_copy(monkeypatch, copies, line):
    monkeypatch.setattr(fast, "SMALL_BATCH", line)
    model, x = small_cnn(), torch.randn(3, 3, 16, 16)
    got = gradcam(model, x, layer="5")
    assert bool(copies) == (line == 0)
    torch.testing.assert_close(got, captum_gradcam(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("line", [fast.SMALL_BATCH, 0])
def test_saliency_equals_captum_with_and_without_the_copy(monkeypatch, copies, line):
    monkeypatch.setattr(fast, "SMALL_BATCH", line)
    model, x = small_cnn(), torch.randn(3, 3, 16, 16)
    got = saliency(model, x)
    assert bool(copies) == (line == 0)
    t = model(x).argmax(1)
    expected = Saliency(model).attribute(x, target=t, abs=True).amax(1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_a_batch_over_the_line_uses_the_copy_and_an_explicit_layout_always_does(copies):
    model = small_cnn()
    side = 1 + int((fast.SMALL_BATCH / 2) ** 0.5)  # two images just over the line
    gradcam(model, torch.randn(2, 3, side, side), layer="5")
    assert len(copies) == 1
    gradcam(model, torch.randn(1, 3, 8, 8), layer="5", channels_last=False)
    assert len(copies) == 2  # asked for a layout: the copy, whatever the size
