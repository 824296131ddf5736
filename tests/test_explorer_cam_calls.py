"""The explorer's Grad-CAM layers are calls, labelled as everywhere else in cnnlab: a ReLU
module used after three convs offers `relu`, `relu #2`, `relu #3`, each heat map the one
Grad-CAM computes by hand at that call (hooks recording every call), and the page's default,
explain's, is one of them (a module name alone, read at its last call, was the page's list).
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab.explorer import create_app
from cnnlab.train.rundir import Run

CONFIG = {"data": None, "classes": list("abc"), "mean": [0.5], "std": [0.25]}
PIXELS = np.random.default_rng(1).integers(0, 256, (12, 12), "u1")


class Shared(nn.Module):
    """One ReLU module after each of three convs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.c3, self.relu, self.fc = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.c3(self.relu(self.c2(self.relu(self.c1(x))))))
        return self.fc(x.mean((2, 3)))


def by_hand(model: nn.Module, x: torch.Tensor, target: int, call: int) -> np.ndarray:
    """Grad-CAM at the relu's `call`-th output (1-based): ReLU(Σ_c mean(∂y/∂A_c) · A_c),
    scaled to a max of 1, upsampled bilinearly to the image (here the same size)."""
    outs = []

    def keep(module, inputs, out) -> None:
        out.retain_grad()
        outs.append(out)

    hook = model.relu.register_forward_hook(keep)
    try:
        model(x)[0, target].backward()
    finally:
        hook.remove()
    a = outs[call - 1]
    cam = F.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1))[0].detach()
    return (cam / cam.max().clamp_min(1e-12)).numpy()


def test_each_call_of_a_shared_relu_is_a_grad_cam_layer_of_its_own():
    torch.manual_seed(0)
    model = Shared().eval()
    client = TestClient(create_app(Run(None, None, model, {**CONFIG, "input_shape": [1, 12, 12]})))
    info = client.get("/api/model").json()
    assert [k for k in info["spatial"] if k.startswith("relu")] == ["relu", "relu #2", "relu #3"]
    assert info["cam_layer"] in info["spatial"]
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, "PNG")
    got = client.post("/api/predict", files={"image": ("n.png", buffer.getvalue())}).json()
    x = (torch.tensor(PIXELS, dtype=torch.float32)[None, None] / 255 - 0.5) / 0.25
    target = int(np.argmax(got["logits"]))
    for call, label in enumerate(["relu", "relu #2", "relu #3"], 1):
        params = {"image": got["image"], "layer": label, "target": target}
        cam = client.get("/api/heatmap", params=params).json()
        assert cam["layer"] == label
        np.testing.assert_allclose(cam["map"], by_hand(model, x.clone(), target, call), atol=2e-4)
