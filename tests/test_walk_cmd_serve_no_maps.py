"""The explorer on a model with no feature map (an MLP on the pixels, imported): /api/top,
/api/actmax and /api/features answered 'no top images for '1'; layers: ' and '... layers
with maps: ', a list with nothing in it. They now say the model has none. Truth: forward
hooks on the model see no 4-D output."""

from __future__ import annotations

import torch
from fastapi.testclient import TestClient

from cnnlab.explorer import create_app
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

NETS = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""


def test_routes_say_the_model_has_no_map(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    model = load_run(path).model
    dims = []
    hooks = [m.register_forward_hook(lambda m, a, y: dims.append(y.dim())) for m in model]
    with torch.no_grad():
        model(torch.zeros(1, 1, 8, 8))
    for h in hooks:
        h.remove()
    assert 4 not in dims
    client = TestClient(create_app(path))
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    for route, params in (
        ("/api/top", {"layer": "1", "channel": 0}),
        ("/api/actmax", {"layer": "1", "channel": 0, "steps": 2}),
        ("/api/features", {"image": image, "layer": "1"}),
    ):
        answer = client.get(route, params=params)
        assert answer.status_code == 400, route
        error = answer.json()["error"]
        assert not error.rstrip().endswith(":"), (route, error)
        assert "no layer with a (C, H, W) map" in error, (route, error)
