"""The explorer on what a careful user sends it: a conv whose input the model later changes in
place, and a geometry request too large to draw. Truths: nn.Conv2d's own output (a forward
hook on a fresh pass), the geometry formula, a 4xx status with a message."""

from __future__ import annotations

import time

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.explorer.panels import MAX_PADDING, playground
from cnnlab.explorer.probe import Network, dot_product


class RectifiedAfterRead(nn.Module):
    """`side` reads h, then h is rectified in place (ReLU(inplace=True)): the input `side`
    multiplied its filter with is h before the ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.stem(x)
        s = self.side(h)
        h = self.act(h)
        return self.head((s + h).mean((2, 3)))


def test_a_conv_input_changed_in_place_later_is_traced_as_the_conv_read_it():
    torch.manual_seed(0)
    model = RectifiedAfterRead().eval()
    x = torch.randn(1, 1, 8, 8)
    seen = {}
    hook = model.side.register_forward_hook(lambda m, a, out: seen.setdefault("y", out.clone()))
    with torch.no_grad():
        model(x)
    hook.remove()
    net = Network.of(model, (1, 8, 8))
    probe = net.probe(x)
    assert (probe.inputs["side"] < 0).any()  # the input as read, before the in-place ReLU
    for f, i, j in [(0, 0, 0), (1, 3, 4), (3, 7, 7), (2, 5, 1)]:
        d = dot_product(net, probe, "side", f, i, j)
        own = float(seen["y"][0, f, i, j])
        assert abs(d["output"] - own) < 1e-5, (f, i, j, d["output"], own)
        assert abs(d["network"] - own) < 1e-6


def test_geometry_refuses_a_padding_too_large_to_draw():
    """The playground lists every window; a padding of 10^9 would list 2·10^9 of them (the
    server hung on that one request). Every other field is bounded, padding is too: a
    SpecError, which the app answers with 400 and its message."""
    start = time.perf_counter()
    with pytest.raises(SpecError, match="padding"):
        playground(7, 3, "100000")
    assert time.perf_counter() - start < 1
    assert playground(7, 3, str(MAX_PADDING))["output"] == 7 + 2 * MAX_PADDING - 3 + 1


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The explorer on a run of a tiny conv net trained one epoch on the 8×8 digits."""
    import cnnlab
    from cnnlab.explorer import create_app
    from cnnlab.train import TrainConfig, train

    spec = {
        "name": "tiny-digits",
        "input": [1, 8, 8],
        "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
    }
    out = tmp_path_factory.mktemp("audit") / "run"
    train(cnnlab.load_spec(spec), "digits", out, TrainConfig(epochs=1, tta=False))
    return TestClient(create_app(out))


@pytest.mark.parametrize(
    ("url", "status", "names"),
    [
        ("/api/trace?image=x&layer=0&channel=one&row=0&col=0", 422, "channel"),
        ("/api/trace?image=x&layer=0", 422, "row"),
        ("/api/geometry?size=1000&kernel=3", 422, "size"),
        ("/api/samples?count=0", 422, "count"),
        ("/api/no-such-route", 404, "Not Found"),
    ],
)
def test_every_error_is_an_error_message_as_the_readme_says(client, url, status, names):
    """README: 'Errors come back as {"error": message} with a 4xx status'. FastAPI's own
    refusals (a parameter that is no integer, missing or out of range; no such route) came as
    {"detail": [...]}, which a client reading `error` shows as nothing."""
    r = client.get(url)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and names in r.json()["error"], r.json()


def test_a_form_field_that_is_no_integer_names_itself(client):
    r = client.post("/api/predict", data={"sample": "abc"})
    assert r.status_code == 422 and "sample" in r.json()["error"], r.json()


def test_serve_refuses_threads_below_one(tmp_path, capsys):
    """`--threads -3` was taken as 1 without a word; every other count option is refused."""
    from cnnlab.cli import main

    assert main(["serve", str(tmp_path), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and len(err.strip().splitlines()) == 1


SCALES_IN_PLACE = '''
import torch
from torch import nn


class Net(nn.Module):
    """Scales its input in place (`x *= 0.5`), a NumPy habit."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x *= 0.5
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def make_net():
    return Net()
'''


@pytest.fixture(scope="module")
def scaling_run(tmp_path_factory):
    """A run of a model from code that changes its input in place, one epoch on digits."""
    from cnnlab.cli import main

    root = tmp_path_factory.mktemp("inplace")
    (root / "net.py").write_text(SCALES_IN_PLACE)
    out = root / "run"
    args = ["--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(["train", "--model", f"{root / 'net.py'}:make_net", *args]) == 0
    return out


def test_a_model_that_changes_its_input_in_place_is_explored_on_its_own_input(scaling_run):
    """Each pass must get the image as preprocessed: the probe ran on the input the
    prediction pass had already halved (the conv's activation 0.173 shown for the model's own
    0.233), and every Grad-CAM request halved the kept image again (the map drifted).
    Truth: the model on a fresh copy of the preprocessed image, a forward hook on its conv."""
    from cnnlab.explorer import create_app

    app = create_app(scaling_run)
    client = TestClient(app)
    ex = app.state.explorer
    image = client.post("/api/predict", data={"sample": 5}).json()["image"]
    x = ex.run.preprocess(ex.test.images[5:6])
    seen = {}
    hook = ex.run.model.conv.register_forward_hook(lambda m, a, y: seen.setdefault("y", y.clone()))
    with torch.no_grad():
        ex.run.model.eval()(x.clone())
    hook.remove()
    trace = client.get(
        "/api/trace", params={"image": image, "layer": "conv", "channel": 0, "row": 3, "col": 3}
    ).json()
    assert trace["network"] == pytest.approx(float(seen["y"][0, 0, 3, 3]), abs=1e-6)
    assert trace["output"] == pytest.approx(trace["network"], abs=1e-5)
    maps = [client.get("/api/heatmap", params={"image": image}).json()["map"] for _ in range(3)]
    assert maps[0] == maps[1] == maps[2]
    saliency = [
        client.get("/api/heatmap", params={"image": image, "method": "saliency"}).json()["map"]
        for _ in range(2)
    ]
    assert saliency[0] == saliency[1]
