"""Images holding NaN or inf are refused by every function that takes images, naming the
images, where they gave a measurement of the input passed off as one of the model: one NaN
image of four made dead_units report every unit dead (NaN > 0 is false), gradient_flow
report 'exploding' and Grad-CAM an all-zero map. And `inspect.layer_calls` checks its images
as the rest of inspect does (a NumPy array raised AttributeError, an empty batch gave
shapes of 0 images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain, inspect
from cnnlab.errors import CnnlabError


class Block(nn.Module):
    """A ResNet basic block as people write it: `out += identity`, one ReLU used twice."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Block(8), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 10),
    ).eval()  # fmt: skip


def _images(bad: float = float("nan")) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.randn(4, 3, 16, 16)
    x[2, 1, 5, 5] = bad
    return x


def _alive_by_hand(model: nn.Module, x: torch.Tensor) -> int:
    """Channels of the first ReLU that are > 0 somewhere, read by a forward hook."""
    seen = []
    hook = model[1].register_forward_hook(lambda m, a, y: seen.append(y.detach().clone()))
    with torch.no_grad():
        model(x)
    hook.remove()
    return int((seen[0].amax((0, 2, 3)) > 0).sum())


Y = torch.arange(4) % 2
CALLS = {
    "saliency": lambda m, x: explain.saliency(m, x),
    "smoothgrad": lambda m, x: explain.smoothgrad(m, x, n=2),
    "gradcam": lambda m, x: explain.gradcam(m, x),
    "feature_maps": lambda m, x: explain.feature_maps(m, x, ["2"]),
    "linear_probe": lambda m, x: explain.linear_probe(m, (x, Y), (x, Y), epochs=2),
    "activation_maximization": lambda m, x: explain.activation_maximization(
        m, "2.conv1", 0, steps=2, restarts=1, data=x
    ),
    "dead_units": lambda m, x: diagnose.dead_units(m, x),
    "activation_stats": lambda m, x: diagnose.activation_stats(m, x),
    "gradient_flow": lambda m, x: diagnose.gradient_flow(m, (x, torch.arange(4))),
    "layer_calls": lambda m, x: inspect.layer_calls(m, x),
}  # fmt: skip


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_non_finite_images_are_refused_naming_them(name, bad):
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CnnlabError, match=r"NaN or infinite values \(image 2 of a batch of 4\)"):
        CALLS[name](model, _images(bad))
    after = model.state_dict()
    assert not model.training and all(torch.equal(v, after[k]) for k, v in before.items())


def test_what_the_nan_image_made_dead_units_say_was_false():
    """The truth on the three finite images: every channel of the first ReLU fires; the
    batch with the NaN image had all 8 reported dead. Now refused; the finite images alone
    agree with the hooks."""
    model, x = _net(), _images()
    clean = x[[0, 1, 3]]
    assert _alive_by_hand(model, clean) == 8
    dead = diagnose.dead_units(model, clean)
    assert dead.layers[0].dead == 0
    with pytest.raises(CnnlabError, match="fix the preprocessing or drop those images"):
        diagnose.dead_units(model, x)


def test_gradcam_of_finite_images_unchanged_by_the_check():
    """The check refuses only non-finite images: a finite batch's Grad-CAM is Captum's."""
    captum = pytest.importorskip("captum.attr")
    model, x = _net(), _images()[[0, 1, 3]]
    cam = explain.gradcam(model, x, target=[1, 2, 3], layer="2.relu #2")
    ref = captum.LayerGradCam(model, model[2].relu).attribute(
        x, target=torch.tensor([1, 2, 3]), relu_attributions=True
    )
    ref = captum.LayerAttribution.interpolate(ref, (16, 16), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    assert torch.allclose(cam, ref, atol=1e-5)


@pytest.mark.parametrize(
    ("images", "says"),
    [
        (np.zeros((2, 3, 16, 16), np.float32), "torch.from_numpy"),
        ([torch.zeros(3, 16, 16)] * 2, "torch.stack"),
        (torch.zeros(0, 3, 16, 16), "the batch is empty"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "normalise them first"),
    ],
)
def test_layer_calls_checks_its_images(images, says):
    """Before: AttributeError 'numpy.ndarray' object has no attribute 'clone', and an empty
    batch answered with shapes of 0 images."""
    with pytest.raises(CnnlabError, match=says):
        inspect.layer_calls(_net(), images)
