"""The dot-product panel of a conv that reads a slice of a larger tensor's channels (one half
of a `torch.chunk`, a `split`, a strided slice): its input channels are numbered as channels
of the tensor split, and the answer says which tensor. Truth: torch's own slice of that
tensor (a forward hook on the layer that made it), padded as the conv pads, times the filter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explorer.probe import Network, dot_product

pytestmark = pytest.mark.usefixtures("one_thread")


class Split(nn.Module):
    """A stem of 8 channels; `how` picks which of them `side` reads."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.side = nn.Conv2d(4, 3, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))

    def forward(self, x):
        h = self.stem(x)
        if self.how == "chunk":
            part = torch.chunk(h, 2, dim=1)[1]  # channels 4..7
        elif self.how == "split":
            part = torch.split(h, [3, 4, 1], dim=1)[1]  # channels 3..6
        elif self.how == "every-other":
            part = h[:, 1::2]  # channels 1, 3, 5, 7
        else:  # a functional activation first: the tensor split is no layer's output
            part = torch.chunk(F.relu(h), 2, dim=1)[1]
        return self.head(self.side(part))


EXPECTED = {
    "chunk": ([4, 5, 6, 7], "stem"),
    "split": ([3, 4, 5, 6], "stem"),
    "every-other": ([1, 3, 5, 7], "stem"),
    "relu-chunk": ([4, 5, 6, 7], None),
}


@pytest.mark.parametrize("how", list(EXPECTED))
def test_a_conv_on_a_slice_names_the_channels_of_the_tensor_split(how):
    torch.manual_seed(0)
    model = Split(how).eval()
    x = torch.randn(1, 1, 9, 9)
    net = Network.of(model, (1, 9, 9))
    probe = net.probe(x)
    seen = {}
    model.stem.register_forward_hook(lambda m, a, y: seen.update(h=y.detach()))
    with torch.no_grad():
        model(x)
    h = seen["h"][0] if how != "relu-chunk" else F.relu(seen["h"][0])
    channels, source = EXPECTED[how]
    t = dot_product(net, probe, "side", 2, 4, 5)
    assert t["input_channels"] == channels
    assert t["input_slice"]["source"] == source
    assert t["input_slice"]["channels"] == 8
    padded = F.pad(h, (1, 1, 1, 1))
    for k, c in enumerate(channels):  # the patch shown as channel c is channel c of h
        window = padded[c, 4:7, 5:8]
        shown = torch.tensor(t["patch"][k], dtype=torch.float64)
        assert torch.allclose(shown, window.double(), atol=1e-6)
        want = (window * model.side.weight[2, k]).sum()
        assert t["channel_sums"][k] == pytest.approx(float(want), abs=1e-5)


def test_a_conv_reading_a_whole_tensor_has_no_slice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, groups=2), nn.Flatten())
    net = Network.of(model, (1, 9, 9))
    t = dot_product(net, net.probe(torch.randn(1, 1, 9, 9)), "2", 1, 0, 0)
    assert t["input_slice"] is None
    assert t["input_channels"] == [2, 3]  # the second group's, numbered as before


def test_a_chunk_of_the_image_is_named_the_input():
    class FirstChannels(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.conv(x[:, 2:3]).mean((2, 3))

    net = Network.of(FirstChannels(), (3, 8, 8))
    t = dot_product(net, net.probe(torch.randn(1, 3, 8, 8)), "conv", 0, 1, 1)
    assert t["input_channels"] == [2]
    assert t["input_slice"]["source"] == "input"


def test_the_page_numbers_and_names_the_slice(tmp_path):
    """The page's channel list and shares read 'input channel 0..3' for the chunk's second
    half; they read stem's channels 4..7, and a line says which tensor and slice."""
    import numpy as np
    from PIL import Image

    from browser import opened
    from cnnlab.explorer import create_app
    from cnnlab.train.rundir import Run
    from explorer_runs import serving, wait_until

    torch.manual_seed(0)
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25],
              "input_shape": [1, 9, 9]}  # fmt: skip
    app = create_app(Run(tmp_path, None, Split("chunk").eval(), config))
    upload = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 9), "u1")).save(upload)
    with serving(app) as url, opened(url) as (page, problems):
        page.set_input_files("#upload", str(upload))
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "side")
        wait_until(page, "state.maps !== null && state.maps.layer === 'side'")
        page.click("#channel-view", position={"x": 140, "y": 140})
        wait_until(page, "document.getElementById('dot-network').textContent !== ''")
        options = page.locator("#dot-channel option").all_text_contents()
        shares = page.locator("#dot-shares li").all_text_contents()
        said = page.text_content("#dot-slice")
    assert options == ["4", "5", "6", "7"]
    assert {s.split(":")[0] for s in shares} == {f"input channel {c}" for c in (4, 5, 6, 7)}
    assert "a slice of stem's output (8 channels" in said and "channels 4–7" in said, said
    assert "the conv itself numbers them 0–3" in said and not problems, problems


class ReluChunk(nn.Module):
    """conv1, a ReLU (in place or not), then conv2 on the second half of its channels."""

    def __init__(self, in_place: bool):
        super().__init__()
        self.in_place = in_place
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))

    def forward(self, x):
        x = F.relu_(self.conv1(x)) if self.in_place else F.relu(self.conv1(x))
        _, b = x.chunk(2, 1)
        return self.head(self.conv2(b))


@pytest.mark.parametrize("in_place", [False, True])
def test_a_chunk_after_an_in_place_relu_is_no_layers_output(tmp_path, in_place):
    """F.relu_ writes into conv1's output: the tensor chunked holds relu(conv1), a tensor
    the forward made, as after F.relu; the answer named it conv1's output. Truth: torch's
    relu of conv1's output (a forward hook), channels 4..7, the windows the route shows."""
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from cnnlab.explorer import create_app
    from cnnlab.train.rundir import Run

    torch.manual_seed(0)
    model = ReluChunk(in_place).eval()
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25],
              "input_shape": [1, 9, 9]}  # fmt: skip
    client = TestClient(create_app(Run(tmp_path, None, model, config)))
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 9), "u1")).save(png, "PNG")
    upload = {"image": ("noise.png", png.getvalue(), "image/png")}
    predicted = client.post("/api/predict", files=upload).json()
    t = client.get(f"/api/trace?image={predicted['image']}&layer=conv2&channel=2&row=4&col=5")
    t = t.json()
    assert t["input_channels"] == [4, 5, 6, 7]
    assert t["input_slice"] == {"source": None, "channels": 8, "start": 4, "step": 1}
    seen = {}
    model.conv1.register_forward_hook(lambda m, a, y: seen.update(h=F.relu(y[0])))
    with torch.no_grad():
        model((torch.from_numpy(np.array(Image.open(png))) / 255.0 - 0.5)[None, None] / 0.25)
    padded = F.pad(seen["h"], (1, 1, 1, 1))
    for k, c in enumerate(t["input_channels"]):  # the window shown as channel c is relu(h)[c]
        shown = torch.tensor(t["patch"][k], dtype=torch.float64)
        assert torch.allclose(shown, padded[c, 4:7, 5:8].double(), atol=1e-5)
