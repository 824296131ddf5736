"""explain.overlay on what gradcam gives and images as a notebook holds them: a batch, 8-bit
pixels, a heatmap of another size. The blend is (1 − α)·image + α·colormap(heat)."""

from __future__ import annotations

import pytest
import torch
from matplotlib import colormaps

from cnnlab import explain
from cnnlab.errors import ExplainError


def expected(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    colours = torch.from_numpy(colormaps["jet"](heat.numpy())[..., :3]).permute(2, 0, 1)
    return (1 - alpha) * image.expand(3, -1, -1) + alpha * colours.float()


def test_a_batch_is_overlaid_image_by_image():
    # it raised torch's 'permute(sparse_coo): number of dimensions ... does not match'
    images, heat = torch.rand(2, 3, 5, 6), torch.rand(2, 5, 6)
    got = explain.overlay(images, heat)
    assert got.shape == (2, 3, 5, 6)
    for i in range(2):
        torch.testing.assert_close(got[i], expected(images[i], heat[i]))


def test_8_bit_pixels_are_read_as_0_to_255():
    # clamped to [0, 1], every pixel above 0 was white
    pixels, heat = torch.randint(0, 256, (1, 5, 6), dtype=torch.uint8), torch.rand(5, 6)
    torch.testing.assert_close(explain.overlay(pixels, heat), expected(pixels.float() / 255, heat))


def test_a_heatmap_of_another_size_is_one_error():
    with pytest.raises(ExplainError, match=r"a heatmap of the image's size \(5, 6\), got \(2, 3\)"):
        explain.overlay(torch.rand(3, 5, 6), torch.rand(2, 3))


def test_a_batch_with_another_count_of_heatmaps_is_told_so():
    # a batch is accepted: the error names the heatmaps it needs, not only single images
    with pytest.raises(ExplainError, match=r"a batch of 2 images needs 2 heatmaps \(2, H, W\)"):
        explain.overlay(torch.rand(2, 3, 5, 6), torch.rand(3, 5, 6))
    with pytest.raises(ExplainError, match=r"needs 2 heatmaps .*got \(5, 6\)"):
        explain.overlay(torch.rand(2, 3, 5, 6), torch.rand(5, 6))


def test_scale_draws_a_map_above_1_and_the_refusals_name_a_call_that_works():
    """Truth: the colormap of heat / heat.max() by hand. scale=True divides by the max, so a
    map above 1 (an unscaled saliency) is drawn, not refused; each refusal's fix, run as
    written, draws the map."""
    torch.manual_seed(0)
    image, heat = torch.rand(1, 5, 6), 5 * torch.rand(5, 6)
    got = explain.overlay(image, heat, scale=True)
    torch.testing.assert_close(got, expected(image, heat / heat.max()))
    with pytest.raises(ExplainError, match=r"got values from .* to 4\.\d+; give scale=True"):
        explain.overlay(image, heat)
    signed = heat - 2.5
    for scale in (False, True):
        with pytest.raises(ExplainError, match=r"heat\.abs\(\), scale=True\)"):
            explain.overlay(image, signed, scale=scale)
    told = explain.overlay(image, signed.abs(), scale=True)
    torch.testing.assert_close(told, expected(image, signed.abs() / signed.abs().max()))
    with pytest.raises(ExplainError, match="finite heatmap"):
        explain.overlay(image, torch.full((5, 6), float("nan")), scale=True)
