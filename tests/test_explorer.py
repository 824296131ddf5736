"""The explorer (`cnnlab serve`): its API against independent truths, its limits, and the page
driven in Debian's Chromium (Playwright) against a real server started by `cnnlab serve`.

The run is tiny and made here: an image folder whose two class names are HTML
(`<script>` and `<img src=x onerror=...>`), so every test also checks that class names stay
text. Truths: the network's own activations (forward hooks), torch's softmax and conv
shapes, nn.Conv2d's parameter count, the summary's receptive fields, the notes' numbers.
The browser's screenshot is kept in test-artifacts/explorer.png.
"""

from __future__ import annotations

import base64
import io
import math
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

import cnnlab
from browser import FLAGS, need_chromium
from cnnlab.explorer import create_app
from cnnlab.explorer.probe import Network, dot_product
from cnnlab.explorer.top import CACHE
from cnnlab.explorer.upload import read_upload
from cnnlab.train.evaluate import predict
from cnnlab.train.rundir import Run, load_run

CLASSES = ("<script>", "<img src=x onerror=alert(1)>")  # folder names hold no '/'
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SPEC = {
    "name": "tiny-explorer",
    "input": [1, 28, 28],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 6, "kernel": 3, "stride": 2, "padding": 1}},
        "batchnorm",
        "relu",
        {"conv": {"filters": 8, "kernel": 3}},
        "relu",
        "gap",
        {"linear": 2},
    ],
}


def shape_image(kind: int, seed: int) -> Image.Image:
    """28×28 grey: a filled square (class 0) or a ring (class 1) at a random place."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (28, 28), 0)
    x, y = (int(v) for v in rng.integers(3, 13, 2))
    draw = ImageDraw.Draw(img)
    if kind == 0:
        draw.rectangle([x, y, x + 11, y + 11], fill=230)
    else:
        draw.ellipse([x, y, x + 12, y + 12], outline=230, width=2)
    return img


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A bf16 run trained for one epoch on 2 × 20 images of a folder named with HTML."""
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("explorer")
    for label, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(20):
            shape_image(label, 100 * label + i).save(root / "data" / name / f"{i}.png")
    out = root / "run"
    # bf16 (on any CPU): the explorer must predict in the run's precision, as eval does
    config = TrainConfig(epochs=1, batch_size=16, tta=False, val_fraction=0.1, precision="bf16")
    train(cnnlab.load_spec(SPEC), str(root / "data"), out, config)
    return out


@pytest.fixture(scope="module")
def client(run_dir) -> TestClient:
    return TestClient(create_app(run_dir))


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def own_activations(run, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every leaf module's output on one image, from plain forward hooks (the truth)."""
    seen, handles = {}, []
    for name, m in run.model.named_modules():
        if name and not m._modules:
            hook = lambda m, i, o, name=name: seen.__setitem__(name, o[0].detach().clone())  # noqa: E731
            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        run.model(run.preprocess(pixels))
    for h in handles:
        h.remove()
    return seen


# --- the API ------------------------------------------------------------------------------


def test_predict_top_and_softmax_match_torch(client, run_dir):
    """Truth: the model under torch's own bf16 autocast (the run's precision), torch.softmax."""
    run = load_run(run_dir)
    assert run.autocast == torch.bfloat16
    got = client.post("/api/predict", data={"sample": 1}).json()
    ds = run.dataset("test")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = run.model(run.preprocess(ds.images[1:2]))[0].float()
    probs = torch.softmax(logits.double(), 0)
    assert got["logits"] == pytest.approx(logits.tolist(), abs=1e-5)
    assert got["probabilities"] == pytest.approx(probs.tolist(), abs=1e-6)
    assert got["exp"] == pytest.approx([math.exp(z) for z in got["logits"]], rel=1e-9)
    assert got["sum"] == pytest.approx(sum(got["exp"]), rel=1e-12)
    assert got["top"][0]["class"] == run.classes[int(probs.argmax())]
    assert got["true_class"] == run.classes[int(ds.labels[1])]
    cam = np.array(got["gradcam"])
    assert cam.shape == (28, 28) and cam.min() >= 0 and cam.max() <= 1


def test_upload_is_read_as_the_training_images_are(client, run_dir):
    """An uploaded PNG of a training-style image gives the logits of that image's pixels."""
    run = load_run(run_dir)
    img = shape_image(1, 7)
    got = client.post("/api/predict", files={"image": ("ring.png", png_bytes(img))}).json()
    pixels = torch.from_numpy(np.array(img))[None, None]  # (1, 1, 28, 28) uint8
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = run.model(run.preprocess(pixels))[0].float()
    assert got["logits"] == pytest.approx(logits.tolist(), abs=1e-5)
    assert "note" not in got  # the run's size: nothing to say


def test_upload_of_training_images_is_predicted_as_predict_and_eval_do(client, run_dir):
    """Truth: `evaluate.predict` on the same training files of this bf16 run: the same
    probabilities, and the Grad-CAM drawn for the class they name. The dot-product panel stays
    exact (fp32) meanwhile: test_every_conv_activation_is_its_dot_product."""
    run = load_run(run_dir)
    files = sorted((run_dir.parent / "data").glob("*/1[0-4].png"))
    assert len(files) == 10
    for path, expected in zip(files, predict(run, files, top=len(CLASSES)), strict=True):
        form = {"image": (path.name, path.read_bytes())}
        got = client.post("/api/predict", files=form).json()
        assert [t["class"] for t in got["top"]] == [c for c, _ in expected.top]
        assert [t["probability"] for t in got["top"]] == pytest.approx(
            [p for _, p in expected.top], abs=1e-6
        )
        named = run.classes.index(expected.top[0][0])
        cam = client.get("/api/heatmap", params={"image": got["image"], "target": named}).json()
        assert cam["map"] == got["gradcam"]  # the map drawn is the named class's


def test_upload_of_another_size_is_read_as_predict_reads_the_file(client, run_dir, tmp_path):
    """Truth: `predict` on the same file (read_image's resize, the run's precision): the same
    probabilities, and the resize said in a note (it used to be a tensor resize of its own)."""
    run = load_run(run_dir)
    big = tmp_path / "big.png"
    shape_image(0, 3).resize((56, 84)).save(big)  # covered and centre-cropped to 28×28
    got = client.post("/api/predict", files={"image": ("big.png", big.read_bytes())}).json()
    (expected,) = predict(run, [big], top=len(CLASSES))
    assert {t["class"]: t["probability"] for t in got["top"]} == pytest.approx(
        dict(expected.top), abs=1e-6
    )
    assert got["note"] == "big.png is 84×56 (H×W); resized to 28×28, the run's input size"
    pixels, size = read_upload(big.read_bytes(), "big.png", run.input_shape)
    assert pixels.shape == (1, 1, 28, 28) and size == (84, 56)


def test_every_conv_activation_is_its_dot_product(client, run_dir):
    """sum(products) + bias from reference.trace_conv equals the network's own activation,
    at every position of every conv (corners read the zero padding), and the chain's BN and
    ReLU values are the model's; the field is the summary's receptive field."""
    run = load_run(run_dir)
    pixels = run.dataset("test").images[:1]
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    truth = own_activations(run, pixels)
    rows = {r.name: r for r in cnnlab.summary(run.model, run.input_shape).rows}
    convs = client.get("/api/model").json()["convs"]
    assert [c["conv"] for c in convs] == ["0", "4", "7"]  # by module type, in forward order
    assert (convs[0]["bn"], convs[0]["act"], convs[2]["bn"]) == ("1", "2", None)
    for chain in convs:
        f_out, h, w = truth[chain["conv"]].shape
        for i, j in {(0, 0), (h - 1, w - 1), (h // 2, 0), (0, w - 1)}:
            query = f"layer={chain['conv']}&channel={f_out - 1}&row={i}&col={j}"
            t = client.get(f"/api/trace?image={image}&{query}").json()
            own = float(truth[chain["conv"]][f_out - 1, i, j])
            assert t["sum"] == pytest.approx(np.sum(t["products"]), abs=1e-9)
            assert t["sum"] + t["bias"] == pytest.approx(t["output"], abs=1e-12)
            assert t["output"] == pytest.approx(own, abs=1e-5)
            assert t["network"] == pytest.approx(own, abs=1e-6)
            for step in t["chain"]:
                assert step["value"] == pytest.approx(
                    float(truth[step["layer"]][-1, i, j]), abs=1e-5
                )
            assert t["field"]["height"] == rows[chain["conv"]].receptive_field


RESIDUAL_NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x):
        x = self.relu(self.stem(x))
        y = self.body(x)
        y += x
        return self.head(self.relu(y))


def make():
    return Net()
"""


def test_a_run_made_from_code_is_served(run_dir, tmp_path):
    """A run whose model comes from the user's code (no spec): the page's model route names
    the factory, and a clicked activation is still its own dot product, through `+=` and an
    in-place ReLU."""
    from cnnlab.train import TrainConfig, train

    (tmp_path / "net.py").write_text(RESIDUAL_NET)
    from cnnlab.train.source import parse_model_ref

    source = parse_model_ref(f"{tmp_path / 'net.py'}:make", [])
    data = str(run_dir.parent / "data")
    # bf16 (on any CPU): the explorer must predict in the run's precision, as eval does
    config = TrainConfig(epochs=1, batch_size=16, tta=False, val_fraction=0.1, precision="bf16")
    train(source, data, tmp_path / "run", config)
    client = TestClient(create_app(tmp_path / "run"))
    model = client.get("/api/model")
    assert model.status_code == 200 and model.json()["name"] == "make"
    run = load_run(tmp_path / "run")
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    truth = own_activations(run, run.dataset("test").images[:1])
    t = client.get(f"/api/trace?image={image}&layer=body&channel=3&row=5&col=7").json()
    assert t["sum"] + t["bias"] == pytest.approx(t["output"], abs=1e-12)
    # the hook saw body's output before `+=` wrote into it: the conv's own value
    assert t["output"] == pytest.approx(float(truth["body"][3, 5, 7]), abs=1e-5)


def test_stepping_moves_the_window_by_the_stride(client):
    image = client.post("/api/predict", data={"sample": 2}).json()["image"]
    a = client.get(f"/api/trace?image={image}&layer=4&channel=0&row=1&col=1").json()
    b = client.get(f"/api/trace?image={image}&layer=4&channel=0&row=1&col=2").json()
    assert b["origin"] == [a["origin"][0], a["origin"][1] + 2]  # stride 2 (§2.4)
    assert b["field"]["left"] - a["field"]["left"] == 4  # jump: pool 2 × stride 2
    assert b["filter"] == a["filter"]  # weight sharing: the same filter slides (§1)


def test_trace_refuses_what_is_not_there(client):
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    for query in ("layer=3&channel=0&row=0&col=0", "layer=0&channel=99&row=0&col=0",
                  "layer=0&channel=0&row=28&col=0"):  # fmt: skip
        r = client.get(f"/api/trace?image={image}&{query}")
        assert r.status_code == 400 and r.json()["error"]
    assert client.get("/api/trace?image=feedbeef&layer=0&channel=0&row=0&col=0").status_code == 404


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 20),
    kernel=st.integers(1, 7),
    padding=st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 3).map(str)),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
)
def test_geometry_playground_matches_a_real_conv(client, size, kernel, padding, stride, dilation):
    """Output size = torch's Conv2d on that input; params = the module's; windows cover
    exactly the pixels the conv reads (dropped ones excluded)."""
    q = f"size={size}&kernel={kernel}&padding={padding}&stride={stride}&dilation={dilation}"
    r = client.get(f"/api/geometry?{q}&in_channels=3&filters=5")
    pad = padding if padding in ("valid", "same") else int(padding)
    try:
        conv = torch.nn.Conv2d(3, 5, kernel, stride=stride, padding=pad, dilation=dilation)
        out = conv(torch.zeros(1, 3, size, size)).shape[-1]
    except (RuntimeError, ValueError):  # torch refuses it: so does the playground, with a 400
        assert r.status_code == 400 and r.json()["error"]
        return
    g = r.json()
    assert r.status_code == 200 and g["output"] == out
    assert g["params"] == sum(p.numel() for p in conv.parameters())
    read = {t for w in g["windows"] for t in w if 0 <= t < size}
    if dilation == 1:  # (a dilated kernel's holes may skip the last pixels: not the floor's)
        assert max(read, default=-1) == size - 1 - g["dropped"]


def test_geometry_the_notes_floor_example(client):
    g = client.get("/api/geometry?size=7&kernel=3&stride=3").json()  # geometry's doctest
    assert (g["output"], g["dropped"], g["dropped_pixels"]) == (2, 1, [6])
    assert g["floored"] and g["exact"] == pytest.approx(7 / 3)


def test_top_images_are_the_strongest_and_cached(client, run_dir, monkeypatch):
    """Top images per channel = argmax of the channel's spatial max over the test split,
    written once to RUN/explorer/ and read back by a new app without recomputing."""
    run = load_run(run_dir)
    got = client.get("/api/top?layer=2&channel=1").json()
    ds = run.dataset("test")
    with torch.no_grad():
        acts = [own_activations(run, ds.images[n : n + 1])["2"][1].max() for n in range(len(ds))]
    best = sorted(range(len(ds)), key=lambda n: -float(acts[n]))[: len(got["images"])]
    assert [i["value"] for i in got["images"]] == pytest.approx([float(acts[n]) for n in best])
    assert {i["class"] for i in got["images"]} <= set(CLASSES)
    assert (run_dir / CACHE).is_file()
    import cnnlab.explorer.top as top

    monkeypatch.setattr(top, "top_images", lambda *a, **k: pytest.fail("cache not used"))
    again = TestClient(create_app(run_dir)).get("/api/top?layer=2&channel=1").json()
    assert again == got


def test_saliency_is_the_input_gradient(client, run_dir):
    """max over channels of |d logit_predicted / d x| (autograd on the model itself), over
    its max: what the saliency overlay shows."""
    run = load_run(run_dir)
    image = client.post("/api/predict", data={"sample": 3}).json()["image"]
    got = np.array(client.get(f"/api/heatmap?image={image}&method=saliency").json()["map"])
    x = run.preprocess(run.dataset("test").images[3:4]).requires_grad_(True)
    logits = run.model(x)
    logits[0, logits[0].argmax()].backward()
    truth = x.grad.abs().amax(1)[0]
    assert got == pytest.approx((truth / truth.max()).numpy(), abs=2e-4)


def test_feature_maps_and_actmax(client):
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    maps = client.get(f"/api/features?image={image}&layer=2").json()
    assert (maps["n"], maps["h"], maps["w"]) == (4, 28, 28)
    assert all(lo <= hi for lo, hi in zip(maps["min"], maps["max"], strict=True))
    am = client.get("/api/actmax?layer=6&channel=0&steps=4").json()
    assert am["image"].startswith("data:image/png;base64,")


def tall_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")  # 1 bit a pixel: small file
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, data, status",
    [
        ("empty.png", b"", 400),
        ("cut.png", "cut", 400),
        ("notes.txt", b"O = floor((I - K + 2P) / S) + 1\n" * 10, 400),
        ("huge.png", b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 2**20), 413),
        ("bomb.png", "bomb", 413),
    ],
)
def test_bad_uploads_get_a_4xx_with_a_message(client, name, data, status):
    if data == "cut":  # half of a noisy PNG: its pixel data ends mid-stream
        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        whole = png_bytes(Image.fromarray(noise))
        data = whole[: len(whole) // 2]
    data = tall_png(10_000, 10_000) if data == "bomb" else data
    r = client.post("/api/predict", files={"image": (name, data, "image/png")})
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"] and "Traceback" not in r.text


def test_no_file_outside_the_package_is_served(client):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f..%2ferrors.py",
                 "/static//etc/passwd", "/api/features?image=../../etc/x&layer=0"):  # fmt: skip
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert "import" not in r.text and "root:" not in r.text


def test_page_is_static_and_says_no_class_name(client):
    page = client.get("/")
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    assert CLASSES[0] not in page.text and "innerHTML" not in client.get("/static/app.js").text
    assert client.get("/api/model").headers["content-type"] == "application/json"
    assert client.get("/api/model").json()["classes"] == sorted(CLASSES)  # folder order


def test_network_finds_convs_in_forward_order_not_registration_order():
    """A model that registers its head conv first: the explorer follows the calls."""

    class Backwards(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.late = torch.nn.Conv2d(4, 2, 3)
            self.early = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return self.pool(self.late(F.relu(self.early(x)))).flatten(1)

    model = Backwards().eval()
    net = Network.of(model, (1, 9, 9))
    assert [c.conv for c in net.chains] == ["early", "late"]
    assert net.chains[0].act is None  # F.relu is no module: the chain stops at the conv
    x = torch.randn(1, 1, 9, 9)
    t = dot_product(net, net.probe(x), "late", 1, 6, 6)
    with torch.no_grad():
        own = float(model.late(F.relu(model.early(x)))[0, 1, 6, 6])
    assert t["output"] == pytest.approx(own, abs=1e-5)
    # unit 6 of `late` reads units 6..8 of `early` (padding 1: unit k sees pixels k-1..k+1)
    assert t["field"] == {"top": 5.0, "left": 5.0, "height": 5, "width": 5}


class SharedBlock(torch.nn.Module):
    """One block applied to two inputs (the second after a pool), one ReLU module reused."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(4, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(inplace=True),
        )
        self.pool = torch.nn.MaxPool2d(2)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = self.pool(self.block(self.act(self.stem(x))))
        return self.head(self.act(self.block(x) - 0.5).mean((2, 3)))


def every_call(model, x) -> tuple[dict, dict]:
    """Each leaf module's inputs and outputs, a list with one per call, from plain forward
    hooks (the truth)."""
    ins, outs, handles = {}, {}, []
    for name, m in model.named_modules():
        if name and not m._modules:
            handles.append(m.register_forward_pre_hook(
                lambda m, a, name=name: ins.setdefault(name, []).append(a[0][0].clone())
            ))  # fmt: skip
            handles.append(m.register_forward_hook(
                lambda m, a, o, name=name: outs.setdefault(name, []).append(o[0].clone())
            ))  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return ins, outs


def decoded(maps: dict) -> np.ndarray:
    """/api/features' bytes back to floats: min + byte / 255 · (max − min), map by map."""
    data = np.frombuffer(base64.b64decode(maps["data"]), np.uint8)
    data = data.reshape(maps["n"], maps["h"], maps["w"])
    lo, hi = (np.array(maps[k])[:, None, None] for k in ("min", "max"))
    return lo + data / 255 * (hi - lo)


def test_each_call_of_a_module_called_twice_is_its_own_entry(tmp_path):
    """A shared block applied to two inputs and a reused ReLU: every call is an entry of its
    own, labelled as the summary labels calls (`block.0 #2`); its maps are that call's output
    and its dot product reads that call's input. Truth: forward hooks on every call, and the
    summary's receptive field of each call."""
    torch.manual_seed(0)
    model = SharedBlock().eval()
    bn = model.block[1]
    bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)  # not the identity
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25],
              "input_shape": [1, 16, 16]}  # fmt: skip
    run = Run(tmp_path, None, model, config)
    client = TestClient(create_app(run))
    upload = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), "u1")))
    sent = client.post("/api/predict", files={"image": ("n.png", upload, "image/png")})
    image = sent.json()["image"]
    pixels, _ = read_upload(upload, "n.png", run.input_shape)
    ins, outs = every_call(model, run.preprocess(pixels))
    assert [len(outs[n]) for n in ("stem", "block.0", "block.2", "act")] == [1, 2, 2, 2]
    info = client.get("/api/model").json()
    rows = [r["label"] for r in info["architecture"]["rows"]]
    assert {"block.0", "block.0 #2", "act", "act #2"} <= set(rows) & set(info["maps"])
    for name in ("block.0", "block.1", "block.2", "act"):
        for call, truth in enumerate(outs[name], 1):
            layer = name if call == 1 else f"{name} #{call}"
            maps = client.get("/api/features", params={"image": image, "layer": layer}).json()
            assert (maps["layer"], maps["channels"], maps["h"]) == (layer, 4, truth.shape[1])
            assert maps["min"] == pytest.approx(truth.amin((1, 2)).tolist(), abs=1e-6)
            assert maps["max"] == pytest.approx(truth.amax((1, 2)).tolist(), abs=1e-6)
            step = float(truth.amax() - truth.amin()) / 255  # one byte of the widest map
            np.testing.assert_allclose(decoded(maps), truth.numpy(), atol=step / 2 + 1e-6)
    fields = {(r.name, r.call): r.receptive_field for r in cnnlab.summary(model, (1, 16, 16)).rows}
    for call, (x, y) in enumerate(zip(ins["block.0"], outs["block.0"], strict=True), 1):
        suffix = "" if call == 1 else f" #{call}"
        i, j = y.shape[1] - 1, 1  # the bottom row reads the padding
        query = {"image": image, "layer": "block.0" + suffix, "channel": 2, "row": i, "col": j}
        t = client.get("/api/trace", params=query).json()
        window = F.pad(x, (1, 1, 1, 1))[:, i : i + 3, j : j + 3]  # (C, 3, 3): this call's input
        np.testing.assert_allclose(np.array(t["patch"]), window.numpy(), atol=1e-7)
        assert t["output"] == pytest.approx(float(y[2, i, j]), abs=1e-5)
        assert [s["layer"] for s in t["chain"]] == [f"block.{k}{suffix}" for k in range(3)]
        own = float(outs["block.2"][call - 1][2, i, j])
        assert t["chain"][-1]["value"] == pytest.approx(own, abs=1e-5)
        assert t["field"]["height"] == fields[("block.0", call)]
    refused = client.get("/api/actmax", params={"layer": "block.2", "channel": 0})
    assert refused.status_code == 400 and "block.2 #2" in refused.json()["error"]


# --- the command, a real server, a real browser -----------------------------------------------


def test_serve_warns_before_binding_another_host(run_dir, capsys):
    from cnnlab.cli import main

    assert main(["serve", str(run_dir), "--host", "203.0.113.7", "--port", "0"]) == 2
    err = capsys.readouterr().err  # TEST-NET-3: a non-local address this machine lacks
    assert "warning: binding 203.0.113.7" in err and "cannot bind 203.0.113.7" in err


@pytest.fixture(scope="module")
def server(client):
    """A real uvicorn server for the app on 127.0.0.1, a free port (as `cnnlab serve` binds
    it), in a thread of this process; its URL; stopped after the tests."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = uvicorn.Server(uvicorn.Config(client.app, log_level="warning"))
    thread = threading.Thread(target=serving.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not serving.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serving.started, "uvicorn did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        serving.should_exit = True
        thread.join(10)
        sock.close()


def test_bounded_load_has_no_5xx(server):
    """40 requests from 8 concurrent clients (predict and click), each bounded by a timeout;
    p50/p95 are printed (benchmarks/explorer_latency.py runs the 200-request version)."""
    import httpx

    image = httpx.post(server + "api/predict", data={"sample": 0}, timeout=60).json()["image"]
    urls = [
        f"{server}api/trace?image={image}&layer=0&channel=1&row={i % 28}&col=3" for i in range(64)
    ]

    def hit(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        if n % 4 == 0:
            r = httpx.post(server + "api/predict", data={"sample": n % 8}, timeout=60)
        else:
            r = httpx.get(urls[n], timeout=60)
        return r.status_code, time.perf_counter() - start

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hit, range(40)))
    codes = [c for c, _ in results]
    assert all(c < 500 for c in codes) and codes.count(200) == 40, codes
    ms = np.array([s for _, s in results]) * 1000
    print(f"\nload: 40 requests, 8 clients: p50 {np.percentile(ms, 50):.0f} ms, "
          f"p95 {np.percentile(ms, 95):.0f} ms")  # fmt: skip


def wait_until(page, condition: str, timeout: float = 30) -> None:
    """Poll a JS expression (page.wait_for_function evaluates strings, which the page's
    Content-Security-Policy forbids; page.evaluate goes through the debugger protocol)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.05)


def test_page_in_chromium(server, run_dir, tmp_path):
    """Load, upload, see the probabilities (class names as text), toggle Grad-CAM, click an
    activation: the shown sum + bias is the shown activation and the model's own; step."""
    from playwright.sync_api import sync_playwright

    run = load_run(run_dir)
    upload = tmp_path / "ring.png"
    shape_image(1, 3).save(upload)
    shot = ARTIFACTS / "explorer.png"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        try:
            page.goto(server)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.set_input_files("#upload", str(upload))
            page.wait_for_selector("#bars li", timeout=30_000)
            names = page.locator("#bars .class-name").all_text_contents()
            assert sorted(names) == sorted(CLASSES)  # the HTML names are shown as text
            assert page.locator("script").count() == 1 and page.locator("img[src=x]").count() == 0
            before = page.evaluate("document.getElementById('view').toDataURL()")
            page.click("#toggle-gradcam")
            assert page.get_attribute("#view", "data-overlay") == "gradcam"
            assert page.evaluate("document.getElementById('view').toDataURL()") != before
            page.wait_for_selector("#feature-grid canvas")
            page.click("#channel-view", position={"x": 150, "y": 110})
            wait_until(page, "document.getElementById('dot-network').textContent !== ''")
            shown = {
                k: float(page.text_content(f"#dot-{k}"))
                for k in ("sum", "bias", "output", "network")
            }
            layer, index = page.evaluate("[state.trace.layer, state.trace.index]")
            pixels, _ = read_upload(upload.read_bytes(), "ring.png", run.input_shape)
            own = float(own_activations(run, pixels)[layer][tuple(index)])
            assert shown["sum"] + shown["bias"] == pytest.approx(
                shown["output"], rel=1e-5, abs=1e-6
            )
            assert shown["output"] == pytest.approx(own, rel=1e-5, abs=1e-5)
            assert shown["network"] == pytest.approx(own, rel=1e-5, abs=1e-5)
            page.keyboard.press("ArrowRight")  # slide the window one position (§2.1)
            wait_until(page, f"state.trace.index[2] === {index[2] + 1}")
        finally:
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot: {shot}")
            browser.close()
    assert not problems, problems


def test_serve_socket_gives_connections_tcp_nodelay():
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket says
    it is TCP (proto IPPROTO_TCP): with proto 0, Nagle held every response's body for the
    client's delayed ACK, 44 ms per request. Truth: the kernel's own socket options."""
    import asyncio

    from cnnlab.cli.serve import bind

    listener = bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    seen = {}

    async def main():
        def connected(reader, writer):
            sock = writer.get_extra_info("socket")
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(connected, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen["nodelay"] != 0
