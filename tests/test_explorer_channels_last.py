"""The explorer offers a layer that holds its map channels last (a ConvNeXt block's LayerNorm,
Linear and GELU on (B, H, W, C), between its permutes) as the (C, H, W) map it is: listed by
/api/model, drawn by /api/features, its top test images ranked by its channels, its
activation maximisation and Grad-CAM read there. They were left out (only channels-first maps
were listed). Truth: the output a plain forward hook sees, permuted by torch to (C, H, W);
a channel's response to an image is the largest value of that permuted map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from torch import nn

from cnnlab import explain
from cnnlab.data import ImageSet
from cnnlab.explorer import create_app
from cnnlab.train.checkpoint import MODEL_WEIGHTS
from cnnlab.train.rundir import Run
from explorer_runs import decoded
from test_user_models_layouts import ConvNeXtish

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = {"data": None, "classes": list("abcdefghij"), "input_shape": [1, 16, 16]}
CONFIG |= {"mean": [0.5], "std": [0.25]}
LAST = ("norm", "pw1", "act", "pw2")  # the layers on (B, H, W, C)


def hooked(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """module's output on x from a plain forward hook, permuted by torch to (B, C, H, W)."""
    seen = []
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert seen[0].shape[1:3] == (8, 8)  # the truth holds its channels last: (B, H, W, C)
    return seen[0].permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, model, test images normalized, id of test image 0) of a ConvNeXtish (GELU)
    run with 30 random test images."""
    torch.manual_seed(0)
    model = ConvNeXtish(act=nn.GELU).eval()
    path = tmp_path_factory.mktemp("run")
    save_file(model.state_dict(), path / MODEL_WEIGHTS)  # the top images' cache key
    app = create_app(Run(path, None, model, CONFIG))
    pixels = torch.randint(0, 256, (30, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(30) % 3
    app.state.explorer.test = ImageSet(pixels, labels, tuple(CONFIG["classes"]), "random")
    client = TestClient(app)
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    return client, model, app.state.explorer.run.preprocess(pixels), image


def test_model_lists_the_channels_last_layers_as_maps(served):
    client, model, x, _ = served
    info = client.get("/api/model").json()
    for name in LAST:
        want = list(hooked(model, getattr(model, name), x[:1]).shape[1:])
        assert info["maps"][name] == want  # (C, H, W): 8 or 32 channels of 8×8
        assert info["spatial"][name] == want  # Grad-CAM's menu
    rows = {r["label"]: r["spatial"] for r in info["architecture"]["rows"]}
    assert all(rows[name] for name in LAST)
    assert info["kinds"]["act"] == "GELU"
    assert "act" in info["top_layers"]  # the block's activation ends it


@pytest.mark.parametrize("name", LAST)
def test_features_are_the_hooked_output_permuted(served, name):
    client, model, x, image = served
    truth = hooked(model, getattr(model, name), x[:1])[0]  # (C, H, W)
    maps = client.get("/api/features", params={"image": image, "layer": name}).json()
    assert (maps["channels"], maps["h"], maps["w"]) == tuple(truth.shape)
    step = float(truth.amax() - truth.amin()) / 255
    np.testing.assert_allclose(decoded(maps), truth.numpy(), atol=step / 2 + 1e-5)


def test_top_images_rank_by_the_channel_on_the_last_axis(served):
    client, model, x, _ = served
    response = hooked(model, model.act, x).amax((2, 3))  # (N, 32): each channel's peak
    for channel in (0, 5, 31):
        got = client.get("/api/top", params={"layer": "act", "channel": channel}).json()
        values = [image["value"] for image in got["images"]]
        best = response[:, channel].topk(len(values)).values
        assert values == pytest.approx(best.tolist(), abs=1e-6), channel
        for image in got["images"]:
            assert image["value"] == pytest.approx(float(response[image["index"], channel]))
    past = client.get("/api/top", params={"layer": "act", "channel": 32})
    assert past.status_code == 400  # 32 hidden units: channels 0..31, not the 8 rows


def test_actmax_and_gradcam_read_the_channels_last_layer(served):
    client, model, x, image = served
    got = client.get("/api/actmax", params={"layer": "act", "channel": 20, "steps": 8}).json()
    lo, hi = (float(v) for v in x.aminmax())
    res = explain.activation_maximization(
        model, "act", [20], steps=8, input_size=(1, 16, 16), value_range=(lo, hi), restarts=2
    )
    out = hooked(model, model.act, res.images)  # (1, 32, 8, 8)
    assert float(res.activation[0]) == pytest.approx(float(out[0, 20, 4, 4]), abs=1e-5)
    assert got["activation"] == pytest.approx(float(res.activation[0]), abs=1e-6)
    heat = client.get("/api/heatmap", params={"image": image, "layer": "act"})
    assert heat.status_code == 200, heat.text
    assert np.array(heat.json()["map"]).shape == (16, 16)
