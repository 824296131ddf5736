"""The explorer's prediction and its Grad-CAM: the page's default layer is explain's
(`inspect.default_layer`, the last map the logits are computed from), and a prediction
stands where Grad-CAM cannot be read. A model keeping a decoder's reconstruction for its loss
had the decoder's map as the page's layer, and a backbone run under torch.no_grad() had no
gradient at any map: both answered 400 for the whole prediction, probabilities included.
Truth: the library's default_layer and torch's softmax of the model's own logits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab.explorer import create_app
from cnnlab.inspect import default_layer, spatial_layers
from cnnlab.train.rundir import Run

CONFIG = {"data": None, "classes": list("abc"), "mean": [0.5], "std": [0.25]}
PIXELS = np.random.default_rng(0).integers(0, 256, (12, 12), "u1")


class Reconstructing(nn.Module):
    """A classifier whose decoder's output is kept for a reconstruction loss: the last map
    of the forward is the decoder's, which the logits do not read."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.decoder = nn.Conv2d(4, 1, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.encoder(x)
        self.reconstruction = self.decoder(h)
        return self.head(h.mean((2, 3)))


class FrozenUnderNoGrad(nn.Module):
    """A backbone frozen by running it under torch.no_grad(): no map has a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        with torch.no_grad():
            f = self.backbone(x)
        return self.head(f.mean((2, 3)))


def client_of(model: nn.Module) -> TestClient:
    torch.manual_seed(0)
    run = Run(None, None, model.eval(), {**CONFIG, "input_shape": [1, 12, 12]})
    return TestClient(create_app(run))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, "PNG")
    return buffer.getvalue()


def upload() -> dict:
    return {"image": ("n.png", png(), "image/png")}


def softmax_of(model: nn.Module) -> list[float]:
    x = (torch.from_numpy(PIXELS).float()[None, None] / 255 - 0.5) / 0.25
    with torch.no_grad():
        return model(x).softmax(1)[0].tolist()


def test_the_default_grad_cam_layer_is_the_one_the_logits_read():
    torch.manual_seed(0)
    model = Reconstructing()
    client = client_of(model)
    x = torch.zeros(1, 1, 12, 12)
    got = client.get("/api/model").json()
    assert spatial_layers(model, x)[-1] == "decoder"  # the last map: the page's old default
    assert got["cam_layer"] == default_layer(model, x) == "encoder"
    for data in ({}, {"layer": got["cam_layer"]}):  # the API's default, and the page's choice
        sent = client.post("/api/predict", files=upload(), data=data)
        assert sent.status_code == 200, sent.text
        assert sent.json()["gradcam"] is not None


def test_a_prediction_stands_where_grad_cam_cannot_be_read():
    torch.manual_seed(0)
    model = FrozenUnderNoGrad()
    client = client_of(model)
    sent = client.post("/api/predict", files=upload())
    assert sent.status_code == 200, sent.text
    got = sent.json()
    assert got["gradcam"] is None and "no Grad-CAM" in got["note"]
    assert "no_grad" in got["note"]  # the reason Grad-CAM gives, with its fix
    assert got["probabilities"] == pytest.approx(softmax_of(model), abs=1e-6)


def test_a_wrong_layer_asked_for_is_still_refused():
    client = client_of(Reconstructing())
    sent = client.post("/api/predict", files=upload(), data={"layer": "head"})
    assert sent.status_code == 400 and "head" in sent.json()["error"]


# The explorer page's Grad-CAM layers are the ones Grad-CAM takes. The page offers the
# names of /api/model's `spatial` and selects the last one; that list held 1×1 outputs (a
# ResNet's AdaptiveAvgPool2d(1), a ConvNeXt's last stage at 32 px), so the page's default
# layer was one Grad-CAM refuses and every prediction answered 400. Truth: the library's own
# rule, `inspect.spatial_layers` / `default_layer` (4-D outputs with H·W > 1).


class PooledNet(nn.Module):
    """Convs, then a module pooling to 1×1 before the flatten: the usual ResNet head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2), nn.ReLU()
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def test_the_pages_default_grad_cam_layer_predicts():
    torch.manual_seed(0)
    model = PooledNet().eval()
    run = Run(None, None, model, {**CONFIG, "input_shape": [1, 12, 12]})
    client = TestClient(create_app(run))
    got = client.get("/api/model").json()
    x = torch.zeros(1, 1, 12, 12)
    assert list(got["spatial"]) == spatial_layers(model, x)
    assert "avgpool" in got["maps"]  # the feature view still shows the 1×1 map
    page_default = list(got["spatial"])[-1]  # what app.js selects
    assert page_default == default_layer(model, x) == "features"  # its 8×5×5 map
    upload = {"image": ("n.png", png(), "image/png")}
    sent = client.post("/api/predict", files=upload, data={"layer": page_default})
    assert sent.status_code == 200, sent.text


def test_a_model_without_a_map_layer_predicts_without_grad_cam():
    """An MLP (the `mlp` preset, any flatten-first model): the page asked for Grad-CAM with
    every prediction, and Grad-CAM's refusal made the prediction itself answer 400.
    Truth: torch's softmax of the model's own logits."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    run = Run(None, None, model, {**CONFIG, "input_shape": [1, 12, 12]})
    client = TestClient(create_app(run))
    assert client.get("/api/model").json()["spatial"] == {}
    sent = client.post("/api/predict", files={"image": ("n.png", png(), "image/png")})
    assert sent.status_code == 200, sent.text
    got = sent.json()
    assert got["gradcam"] is None and "no Grad-CAM" in got["note"]
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (12, 12), "u1"))
    x = (pixels.float()[None, None] / 255 - 0.5) / 0.25
    with torch.no_grad():
        truth = model(x).softmax(1)[0]
    assert got["probabilities"] == pytest.approx(truth.tolist(), abs=1e-6)
