"""Grad-CAM's passes over the images: a named layer costs one forward, not one more of x[:1]
for its layout check (the check follows the channels in the forward that computes the map).
Truth: Captum's LayerGradCam for the maps, the model's own call count for the passes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from cnnlab.explain import gradcam


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


class Permuted(nn.Module):
    """A ConvNeXt-style block: its LayerNorm and Linear hold the channels last."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Linear(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = self.mlp(self.norm(self.conv(x).permute(0, 2, 3, 1)))  # (B, H, W, C)
        return self.head(y.mean((1, 2)))


def captum_map(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    t = model(x).argmax(1)
    cam = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
    cam = F.relu(LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear"))
    peak = cam[:, 0].amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam[:, 0] / peak.clamp(min=1e-30), 0.0)


def batches_seen(model: nn.Module) -> list[int]:
    """The batch size of every call of `model` from now on (a hook on the root: the model
    then runs as it is, not as an inference copy, so every pass goes through it)."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    return seen


@pytest.mark.parametrize("channels_last", [None, False])
def test_named_layer_one_pass_and_captum_map(channels_last):
    model, x = small_cnn(), torch.randn(4, 3, 16, 16)
    expected = captum_map(model, model[5], x)
    seen = batches_seen(model)
    got = gradcam(model, x, layer="5", channels_last=channels_last)
    assert seen == [4]  # no pass of x[:1] before it
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


class Turned(nn.Module):
    """`inner` on a map moved by `before`, its output moved by `after` (permute orders): the
    Permuted model with its LayerNorm's map handed on channels first, as Captum reads a map."""

    def __init__(self, inner: nn.Module, before=(0, 1, 2, 3), after=(0, 1, 2, 3)):
        super().__init__()
        self.inner, self.before, self.after = inner, before, after

    def forward(self, y):
        return self.inner(y.permute(*self.before)).permute(*self.after)


@pytest.mark.parametrize("hooked", [False, True])
def test_named_channels_last_layer_one_pass_and_captum_map(hooked):
    torch.manual_seed(0)
    model, x = Permuted().eval(), torch.randn(2, 3, 8, 8)
    twin = Permuted().eval()
    twin.load_state_dict(model.state_dict())
    twin.norm = Turned(twin.norm, after=(0, 3, 1, 2))  # (B, C, H, W) out
    twin.mlp = Turned(twin.mlp, before=(0, 2, 3, 1))  # and back to (B, H, W, C)
    expected = captum_map(twin, twin.norm, x)
    seen = batches_seen(model) if hooked else []  # hooked: the model runs as it is
    got = gradcam(model, x, layer="norm")  # once refused: "'norm' holds its channels last"
    assert seen == ([2] if hooked else [])  # no pass of x[:1] to find its layout
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
