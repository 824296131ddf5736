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


def upload() -> dict:
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, "PNG")
    return {"image": ("n.png", buffer.getvalue(), "image/png")}


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
