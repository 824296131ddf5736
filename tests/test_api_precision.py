"""A model in another precision (.double(), .half(), .bfloat16()): the functions that make
their own images (activation maximisation, the effective receptive field) make them in the
model's dtype; they were float32, which such a model refuses, and the caller had no images
to convert."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain

pytestmark = pytest.mark.usefixtures("one_thread")


def small() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()  # fmt: skip


def test_the_erf_of_a_float64_model_is_autograds_gradient_of_its_centre_unit():
    model = small().double()
    erf = explain.effective_receptive_field(model, "4", (3, 12, 12), n=3)
    x = torch.randn((3, 3, 12, 12), generator=torch.Generator().manual_seed(0)).double()
    x.requires_grad_(True)
    model[:5](x)[:, :, 6, 6].sum().backward()
    assert erf.gradient.dtype == torch.float64
    torch.testing.assert_close(erf.gradient, x.grad.abs().mean((0, 1)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fourier", [False, True])
def test_activation_maximization_of_a_model_in_another_precision(dtype, fourier):
    model, options = small(), dict(steps=5, restarts=2, input_size=(3, 12, 12), fourier=fourier)
    if fourier:
        options["value_range"] = (-1.0, 1.0)
    plain = explain.activation_maximization(model, "4", [0, 1], **options)
    other = explain.activation_maximization(model.to(dtype), "4", [0, 1], **options)
    assert other.images.dtype == dtype
    if dtype == torch.float64:  # the same ascent, from float32 steps
        torch.testing.assert_close(other.images.float(), plain.images, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the activation is the layer's on the images returned
        torch.testing.assert_close(
            other.activation, model[:4](other.images)[:, [0, 1], 6, 6].diag()
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["saliency", "smoothgrad"])
def test_maps_of_a_half_precision_model_are_float32_as_gradcams(method, dtype):
    # bfloat16 maps: numpy refused them ('Got unsupported ScalarType BFloat16')
    model, x = (
        small().to(dtype),
        torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0)),
    )
    maps = getattr(explain, method)(model, x.to(dtype), target=[1, 2])
    assert maps.dtype == torch.float32
    assert maps.numpy().shape == (2, 12, 12)
    if method == "saliency":  # the half-precision gradient itself, widened
        x = x.to(dtype).requires_grad_(True)
        model(x)[[0, 1], [1, 2]].sum().backward()
        torch.testing.assert_close(maps, x.grad.abs().amax(1).float())
