"""A model whose forward changes its input in place (`x.mul_(0.5)`, `x.clamp_(...)`) must
leave the caller's images as they were, in every library function that feeds it images:
Grad-CAM, saliency, SmoothGrad, feature maps, dead units, gradient flow, and BatchNorm's
recalibration over the training images. Truths: the images before the call, and the same
method on a twin model that makes the same change out of place (`x * 0.5`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.train import norm_stats


class Net(nn.Module):
    """A small conv net that scales (and clips) its input first, in place or not."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        if self.inplace:
            x.mul_(0.5).clamp_(-1.0, 1.0)
        else:
            x = (x * 0.5).clamp(-1.0, 1.0)
        return self.head(self.features(x))


def twins() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    inplace = Net(inplace=True).eval()
    plain = Net(inplace=False).eval()
    plain.load_state_dict(inplace.state_dict())
    return inplace, plain


METHODS = {
    "gradcam": lambda m, x: explain.gradcam(m, x),
    "gradcam-layer": lambda m, x: explain.gradcam(m, x, layer="features.1"),
    "saliency": lambda m, x: explain.saliency(m, x),
    "smoothgrad": lambda m, x: explain.smoothgrad(m, x, n=3),
    "feature_maps": lambda m, x: explain.feature_maps(m, x, "features.2")["features.2"],
    "dead_units": lambda m, x: torch.tensor(
        [layer.sparsity for layer in diagnose.dead_units(m, x).layers]
    ),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_model_that_changes_its_input_in_place_leaves_the_callers_images(name):
    """Before: Grad-CAM fed the caller's tensor to the model, so each call halved the user's
    images again (a second call gave another map), and saliency's forward raised on the
    in-place op on its leaf tensor."""
    inplace, plain = twins()
    x = torch.randn(3, 1, 8, 8) * 3
    before = x.clone()
    first = METHODS[name](inplace, x)
    assert torch.equal(x, before), "the caller's images were changed"
    second = METHODS[name](inplace, x)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, METHODS[name](plain, before.clone()), rtol=1e-5, atol=1e-6)


def test_gradient_flow_leaves_the_callers_images():
    inplace, plain = twins()
    x, y = torch.randn(4, 1, 8, 8) * 3, torch.tensor([0, 1, 2, 0])
    before = x.clone()
    flow = diagnose.gradient_flow(inplace, [(x, y)])
    assert torch.equal(x, before)
    truth = diagnose.gradient_flow(plain, [(before.clone(), y)])
    assert [r.mean_abs for r in flow.layers] == pytest.approx(
        [r.mean_abs for r in truth.layers], rel=1e-5
    )


def test_batchnorm_recalibration_leaves_the_training_images():
    """recalibrate's batches were slices of the loader's images (all of them when fewer than
    bn_recalibrate, as for digits), and grey images stay views in channels-last layout: a
    model scaling its input in place halved the training set at every validated epoch."""
    inplace, plain = twins()
    images = torch.randn(32, 1, 8, 8) * 3
    before = images.clone()
    norm_stats.recalibrate(inplace, images, 8, channels_last=True)
    assert torch.equal(images, before)
    norm_stats.recalibrate(plain, before.clone(), 8, channels_last=True)
    bn, truth = inplace.features[1], plain.features[1]
    torch.testing.assert_close(bn.running_mean, truth.running_mean)
    torch.testing.assert_close(bn.running_var, truth.running_var)
