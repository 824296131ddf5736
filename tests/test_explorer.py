"""The explorer's API (`cnnlab serve`) against independent truths, and its limits, on the tiny
run of conftest.py (explorer_runs.py: an image folder whose two class names are HTML, so
every test also checks that class names stay text). Truths: the network's own activations
(forward hooks), torch's softmax and conv shapes, nn.Conv2d's parameter count, the summary's
receptive fields, the notes' numbers, a 4xx status with a message. The page in a browser:
test_explorer_page.py."""

from __future__ import annotations

import io
import math
import os
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import cnnlab
from cnnlab.errors import SpecError
from cnnlab.explorer import create_app
from cnnlab.explorer.panels import MAX_PADDING, playground
from cnnlab.explorer.top import CACHE
from cnnlab.explorer.upload import MAX_PIXELS, UploadError, check_header, read_upload
from cnnlab.train.evaluate import predict, resize_note
from cnnlab.train.rundir import load_run
from explorer_runs import CLASSES, own_activations, png_bytes, shape_image


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
    # every real pixel the conv never reads is dropped or skipped: its gradient is 0
    x = torch.ones(1, 3, size, size, requires_grad=True)
    conv.weight.data.fill_(1.0)
    conv(x).sum().backward()
    unread = [i for i in range(size) if x.grad[0, 0, i].abs().sum() == 0]
    assert sorted(g["dropped_pixels"] + g["skipped_pixels"]) == unread


def test_geometry_pixels_between_windows_are_never_read(client):
    """A 1×1 kernel at stride 2 reads pixels 0, 2, 4 of 5: the page said 'no real pixel is
    dropped' (the floor drops none) and drew 1 and 3 as read."""
    g = client.get("/api/geometry?size=5&kernel=1&stride=2").json()
    assert (g["dropped_pixels"], g["skipped_pixels"]) == ([], [1, 3])
    g = client.get("/api/geometry?size=7&kernel=3&stride=3").json()  # the floor's alone
    assert (g["dropped_pixels"], g["skipped_pixels"]) == ([6], [])


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


def test_actmax_answers_for_the_steps_asked(client):
    """The answers were kept by layer and channel alone: 64 steps asked after 1 got the
    1-step image and activation back. Truth: the activation of 1 step (the first, alone) is
    the lowest; more steps of ascent raise it."""
    one = client.get("/api/actmax?layer=6&channel=1&steps=1").json()
    more = client.get("/api/actmax?layer=6&channel=1&steps=64").json()
    assert (one["steps"], more["steps"]) == (1, 64)
    assert more["activation"] > one["activation"] and more["image"] != one["image"]


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


def test_geometry_refuses_a_padding_too_large_to_draw():
    """The playground lists every window; a padding of 10^9 would list 2·10^9 of them (the
    server hung on that one request). Every other field is bounded, padding is too: a
    SpecError, which the app answers with 400 and its message."""
    start = time.perf_counter()
    with pytest.raises(SpecError, match="padding"):
        playground(7, 3, "100000")
    assert time.perf_counter() - start < 1
    assert playground(7, 3, str(MAX_PADDING))["output"] == 7 + 2 * MAX_PADDING - 3 + 1


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


def test_saliency_with_a_layer_is_refused(client):
    image = client.post("/api/predict", data={"sample": "0"}).json()["image"]
    refused = client.get(f"/api/heatmap?image={image}&method=saliency&layer=0")
    assert refused.status_code == 400 and "takes no layer" in refused.json()["error"]
    plain = client.get(f"/api/heatmap?image={image}&method=saliency")
    assert plain.status_code == 200 and plain.json()["method"] == "saliency"


# The explorer's messages about image sizes name them one way: height × width, marked
# "(H×W)" (the upload guard said width × height, the resize note height × width, so one
# upload's two messages disagreed). Truth: PIL's `Image.size`, which is (width, height).


def png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_too_large_is_named_height_by_width():
    width, height = 4200, 4000  # 16.8 M pixels, over MAX_PIXELS
    assert width * height > MAX_PIXELS
    with pytest.raises(UploadError) as refused:
        check_header(png(width, height, "1"), "wide.png")
    assert f"wide.png is {height}×{width} (H×W) = 17 M pixels" in str(refused.value)


def test_a_resized_upload_is_named_height_by_width_as_its_refusal_would_be():
    data = png(30, 12)  # 12 rows of 30 columns
    pixels, size = read_upload(data, "wide.png", (1, 8, 8))
    assert size == (12, 30) and pixels.shape == (1, 1, 8, 8)
    assert resize_note([("wide.png", size)], (8, 8)) == (
        "wide.png is 12×30 (H×W); resized to 8×8, the run's input size"
    )
    assert resize_note([("a.png", (12, 30)), ("b.png", (8, 9))], (8, 8)) == (
        "2 images are not 8×8 (H×W: a.png 12×30, b.png 8×9); resized to 8×8, the run's input size"
    )
