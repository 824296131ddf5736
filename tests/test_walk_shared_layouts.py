"""One activation module applied in two layouts: a stem conv's map (B, C, H, W), then, after a
pointwise Linear, a ConvNeXt-like (B, H, W, C). Each call is read in its own layout, as
explain's feature maps read it: the explorer's /api/features and /api/top, the report's map
layers and feature maps, `spatial_calls`. They keyed the layout by module, so the first,
channels-first call was moved by the second call's dim: (6, 8, 8), its W read as 6 channels,
where torch's is (8, 8, 6). Truth: each call's output as a plain forward hook sees it,
permuted by torch to (C, H, W) where it holds its channels last."""

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
from cnnlab.inspect import map_dims, spatial_calls
from cnnlab.train.checkpoint import MODEL_WEIGHTS
from cnnlab.train.rundir import Run
from explorer_runs import decoded
from tiny_nets import outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = {"data": None, "classes": list("abc"), "input_shape": [1, 16, 12]}
CONFIG |= {"mean": [0.5], "std": [0.25]}
CALLS = ("act", "act #2")  # the GELU's calls: on (B, 8, 8, 6), then on (B, 8, 6, 12)


class Shared(nn.Module):
    """stem conv -> act on (B, 8, H, W); pointwise Linear -> the same act on (B, H, W, 12)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 2, 2)
        self.act = nn.GELU()
        self.pw = nn.Linear(8, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        y = self.act(self.stem(x))  # (B, 8, H, W)
        y = self.act(self.pw(y.permute(0, 2, 3, 1)))  # (B, H, W, 12)
        return self.head(y.mean((1, 2)))


def shared() -> nn.Module:
    torch.manual_seed(0)
    return Shared().eval()


def hooked(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{call: (B, C, H, W)} of model.act's two calls on x: a plain forward hook's outputs,
    the second permuted by torch from (B, H, W, C)."""
    with torch.no_grad():
        _, seen = outputs(model.act, lambda: model(x))
    first, second = seen
    assert first.shape[1:] == (8, 8, 6) and second.shape[1:] == (8, 6, 12)
    return {"act": first, "act #2": second.permute(0, 3, 1, 2)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, model, test images normalized, id of test image 0) of a Shared run with 30
    random test images."""
    model = shared()
    path = tmp_path_factory.mktemp("run")
    save_file(model.state_dict(), path / MODEL_WEIGHTS)  # the top images' cache key
    app = create_app(Run(path, None, model, CONFIG))
    torch.manual_seed(1)
    pixels = torch.randint(0, 256, (30, 1, 16, 12), dtype=torch.uint8)
    labels = torch.arange(30) % 3
    app.state.explorer.test = ImageSet(pixels, labels, tuple(CONFIG["classes"]), "random")
    client = TestClient(app)
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    return client, model, app.state.explorer.run.preprocess(pixels), image


def test_model_lists_each_call_in_its_own_layout(served):
    client, model, x, _ = served
    truth = hooked(model, x[:1])
    info = client.get("/api/model").json()
    for call in CALLS:
        assert info["maps"][call] == list(truth[call].shape[1:]), call  # act: was [6, 8, 8]
        assert info["spatial"][call] == list(truth[call].shape[1:]), call
    assert {"act", "act #2"} <= set(info["top_layers"])


def test_features_are_each_calls_hooked_output(served):
    client, model, x, image = served
    for call in CALLS:
        truth = hooked(model, x[:1])[call][0]  # (C, H, W)
        maps = client.get("/api/features", params={"image": image, "layer": call}).json()
        assert (maps["channels"], maps["h"], maps["w"]) == tuple(truth.shape), call
        step = float(truth.amax() - truth.amin()) / 255
        np.testing.assert_allclose(decoded(maps), truth.numpy(), atol=step / 2 + 1e-5)


def test_top_images_rank_each_calls_own_channels(served):
    client, model, x, _ = served
    for call in CALLS:
        response = hooked(model, x)[call].amax((2, 3))  # (N, C): each channel's peak
        channels = response.shape[1]
        for channel in (0, channels - 1):
            got = client.get("/api/top", params={"layer": call, "channel": channel}).json()
            values = [image["value"] for image in got["images"]]
            best = response[:, channel].topk(len(values)).values
            assert values == pytest.approx(best.tolist(), abs=1e-6), (call, channel)
        past = client.get("/api/top", params={"layer": call, "channel": channels})
        assert past.status_code == 400, call  # act: 8 channels, not the 6 columns


def test_map_dims_by_call_agree_with_explains_feature_maps_and_torch():
    model, x = shared(), torch.randn(2, 1, 16, 12)
    truth = hooked(model, x)
    got = explain.feature_maps(model, x, list(CALLS))
    for call in CALLS:
        torch.testing.assert_close(got[call], truth[call], rtol=0, atol=0)
    dims = map_dims(model, x, calls=True)  # the dim each call's output holds channels on
    assert (dims["stem"], dims["act"], dims["pw"], dims["act #2"]) == (1, 1, 3, 3)
    assert spatial_calls(model, x) == ["stem", "act", "pw", "act #2"]


def test_the_reports_layers_and_feature_maps_read_each_call_as_torch(tmp_path):
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources

    model = shared()
    run = Run(tmp_path, None, model, CONFIG)
    torch.manual_seed(2)
    pixels = torch.randint(0, 256, (4, 1, 16, 12), dtype=torch.uint8)

    class Given(Sources):
        def split(self, split, n):
            return pixels[:n], run.preprocess(pixels[:n]).float(), torch.arange(len(pixels[:n]))

    src = Given(tmp_path, run, None, Budget())
    _, x, _ = src.test
    truth = hooked(model, x[:1])
    shapes = {label: shape for label, _, shape in src.map_calls}
    assert {c: shapes[c] for c in CALLS} == {c: tuple(truth[c].shape[1:]) for c in CALLS}
    layers = {label: shape for label, _, shape in src.layers}  # as they are: channels first
    assert layers.get("act") == (8, 8, 6) and "act #2" not in layers  # act was left out
    assert set(CALLS) <= set(src.map_layers)
    rows = dict(facts._maps(src).layers)
    for call in CALLS:
        np.testing.assert_array_equal(rows[src.label(call)], truth[call][0].numpy())
