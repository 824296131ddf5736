"""The explorer's deep-layer panel reads each call of a module the blocks share: a ReLU module
after each of three convs ends three blocks, `relu`, `relu #2`, `relu #3`, each with the top
test images of its own call and its own activation maximisation. Top images were kept for a
module's last call only (`relu` and `relu #2` had none, and the page fell back to the conv),
and `/api/actmax` passed the module's name, which explain reads as its first call, for
`relu #3`.

Truth: each call's maps from a plain forward hook on the ReLU that counts its calls (a
channel's response to an image: the largest value of its map), and
`explain.activation_maximization` at the call's label with the route's arguments, whose
activation is the centre unit of that call's map on its image (the same hook)."""

from __future__ import annotations

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
from test_explorer_cam_calls import CONFIG, Shared  # one ReLU module after each of three convs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CALLS = ["relu", "relu #2", "relu #3"]


def each_call(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The ReLU's output at each of its calls, in order, from a plain forward hook."""
    outs: list[torch.Tensor] = []
    hook = model.relu.register_forward_hook(lambda m, i, out: outs.append(out.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    return outs


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, model, the test images normalized) of a run of Shared with 40 test images."""
    torch.manual_seed(0)
    model = Shared().eval()
    path = tmp_path_factory.mktemp("run")
    save_file(model.state_dict(), path / MODEL_WEIGHTS)  # the top images' cache key
    app = create_app(Run(path, None, model, {**CONFIG, "input_shape": [1, 10, 10]}))
    pixels = torch.randint(0, 256, (40, 1, 10, 10), dtype=torch.uint8)
    labels = torch.arange(40) % 3
    app.state.explorer.test = ImageSet(pixels, labels, tuple(CONFIG["classes"]), "random")
    return TestClient(app), model, app.state.explorer.run.preprocess(pixels)


def test_each_call_that_ends_a_block_has_its_own_top_images(served):
    client, model, x = served
    assert client.get("/api/model").json()["top_layers"] == CALLS
    responses = [out.amax((2, 3)) for out in each_call(model, x)]  # (N, C) per call
    shown = []
    for label, response in zip(CALLS, responses, strict=True):
        for channel in range(4):
            got = client.get("/api/top", params={"layer": label, "channel": channel}).json()
            values = [image["value"] for image in got["images"]]
            best = response[:, channel].topk(len(values)).values
            assert values == pytest.approx(best.tolist(), abs=1e-6), (label, channel)
            for image in got["images"]:  # each image's own response at that call
                assert image["value"] == pytest.approx(float(response[image["index"], channel]))
            shown.append([image["index"] for image in got["images"]])
    assert len({tuple(s) for s in shown}) > 4  # the calls rank the images differently


@pytest.mark.parametrize("call", [1, 3])
def test_each_call_has_its_own_activation_maximisation(served, call):
    client, model, x = served
    label = CALLS[call - 1]
    got = client.get("/api/actmax", params={"layer": label, "channel": 1, "steps": 8}).json()
    lo, hi = (float(v) for v in x.aminmax())
    res = explain.activation_maximization(
        model, label, [1], steps=8, input_size=(1, 10, 10), value_range=(lo, hi), restarts=2
    )
    out = each_call(model, res.images)[call - 1]  # (1, C, H, W) at that call
    h, w = out.shape[2:]
    assert float(res.activation[0]) == pytest.approx(float(out[0, 1, h // 2, w // 2]), abs=1e-5)
    assert got["layer"] == label
    assert got["activation"] == pytest.approx(float(res.activation[0]), abs=1e-6)
