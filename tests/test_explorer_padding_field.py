"""The receptive field /api/trace draws for a conv whose input was padded before it: by a
padding module (nn.ZeroPad2d, as MONAI's EfficientNet pads its stem) or by F.pad in a
module's forward (the "TF padding" of Hugging Face's MobileNetV2), evenly or not. Truth: the
input pixels whose gradient for the unit is non-zero (all weights positive, input positive:
no ReLU zeroes a path and nothing cancels), and the summary's RF and jump for the layer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab import summary
from cnnlab.explorer import create_app
from cnnlab.train.rundir import Run

pytestmark = pytest.mark.usefixtures("one_thread")


def padded_stem(size: int) -> nn.Module:
    """A 1-pixel pad after the map (right, bottom) before a 3×3/2 conv, as TF's 'same'."""
    return nn.Sequential(
        nn.ZeroPad2d((0, 1, 0, 1)),
        nn.Conv2d(1, 4, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


class FunctionalPad(nn.Module):
    """F.pad(x, pad) in forward, then a 3×3/2 conv and a 3×3 conv."""

    def __init__(self, pad: tuple[int, int, int, int]):
        super().__init__()
        self.pad = pad
        self.stem = nn.Conv2d(1, 4, 3, stride=2)
        self.conv = nn.Conv2d(4, 4, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x):
        return self.head(self.conv(F.relu(self.stem(F.pad(x, self.pad)))))


MODELS = {
    "ZeroPad2d((0, 1, 0, 1))": (lambda: padded_stem(8), ("1", "3")),
    "F.pad (1, 1, 1, 1)": (lambda: FunctionalPad((1, 1, 1, 1)), ("stem", "conv")),
    "F.pad (2, 0, 0, 1)": (lambda: FunctionalPad((2, 0, 0, 1)), ("stem", "conv")),
}


def seen_pixels(model: nn.Module, layer: str, i: int, j: int, size: int) -> set:
    """(row, col) of the input pixels whose gradient for unit (0, i, j) of `layer` is
    non-zero."""
    x = torch.ones(1, 1, size, size, requires_grad=True)
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, y: out.update(y=y))
    model(x)
    handle.remove()
    out["y"][0, 0, i, j].backward()
    return {tuple(p) for p in torch.nonzero(x.grad[0, 0]).tolist()}


def drawn_pixels(box: dict, size: int) -> set:
    """The pixels of an unclipped field box {top, left, height, width}, clipped to the image."""
    top, left = int(box["top"]), int(box["left"])
    rows = range(max(top, 0), min(top + box["height"], size))
    cols = range(max(left, 0), min(left + box["width"], size))
    return {(r, c) for r in rows for c in cols}


@pytest.mark.parametrize("which", MODELS)
def test_a_conv_behind_padding_draws_the_field_its_gradient_reaches(tmp_path, which):
    """The conv after the pad drew a 1×1 field at (row, col): the pad's output, a new size,
    had no field (a padding module changes the size; F.pad's output is no layer's)."""
    size = 8
    make, layers = MODELS[which]
    torch.manual_seed(0)
    model = make().eval()
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25],
              "input_shape": [1, size, size]}  # fmt: skip
    client = TestClient(create_app(Run(tmp_path, None, model, config)))
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), "u1")).save(png, "PNG")
    upload = {"image": ("noise.png", png.getvalue(), "image/png")}
    image = client.post("/api/predict", files=upload).json()["image"]
    rows = {r.name: r for r in summary(model, (1, size, size)).rows}
    for layer in layers:
        _, out_h, out_w = rows[layer].output_shape
        for i, j in ((i, j) for i in range(out_h) for j in range(out_w)):
            t = client.get(f"/api/trace?image={image}&layer={layer}&channel=0&row={i}&col={j}")
            assert t.status_code == 200, t.text
            field = t.json()["field"]
            assert (field["height"], field["width"]) == (rows[layer].receptive_field,) * 2
            assert drawn_pixels(field, size) == seen_pixels(model, layer, i, j, size), (layer, i, j)
    assert (rows[layers[0]].receptive_field, rows[layers[0]].jump) == (3, 2)
