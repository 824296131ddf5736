"""An upload whose pixel format is not the run's is converted, and the answer says so, as it
says an upload was resized and as predict says it of a file (`data.image.mode_change`): a
colour photo on a grey model is read as luma, alpha composited over black; a grey image on an
RGB model repeats its values, nothing to say. Truths: Pillow's own modes, the runs' input
shapes, and the pixels the explorer answered for against Pillow's convert("L") / ("RGB")."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import cnnlab
from cnnlab.explorer import create_app
from cnnlab.explorer.upload import colour_note
from test_explorer import CLASSES, SPEC, shape_image


@pytest.fixture(scope="module", params=[1, 3], ids=["grey model", "RGB model"])
def client(request, tmp_path_factory):
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("upload")
    for label, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(6):
            shape_image(label, 100 * label + i).save(root / "data" / name / f"{i}.png")
    spec = {**SPEC, "input": [request.param, 28, 28]}
    config = TrainConfig(epochs=1, batch_size=4, tta=False, val_fraction=0.2)
    train(cnnlab.load_spec(spec), str(root / "data"), root / "run", config)
    return TestClient(create_app(root / "run")), request.param


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def shown_pixels(answer: dict) -> np.ndarray:
    """The input the explorer answered for, from its PNG data URL: (H, W) or (H, W, 3)."""
    import base64

    data = base64.b64decode(answer["input"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_answer_says_a_colour_was_converted(client):
    client, channels = client
    gen = np.random.default_rng(0)
    colour = gen.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    grey = gen.integers(0, 256, (28, 28), dtype=np.uint8)
    for array, name in ((colour, "colour.png"), (grey, "grey.png")):
        r = client.post("/api/predict", files={"image": (name, png(array), "image/png")})
        assert r.status_code == 200, r.text
        note = r.json().get("note", "")
        converted = array.ndim == 3 and channels == 1  # grey into RGB: the same values
        assert (f"({name} RGB->L)" in note) == converted, (channels, name, note)
        mode = "RGB" if channels == 3 else "L"
        truth = np.asarray(Image.fromarray(array).convert(mode))
        assert np.array_equal(shown_pixels(r.json()), truth)


def test_colour_note_by_mode():
    rgb = png(np.zeros((4, 4, 3), np.uint8))
    assert colour_note(rgb, "a.png", 1) == (
        "1 image was converted to 1-channel gray, the run's input (a.png RGB->L)"
    )
    assert colour_note(rgb, "a.png", 3) == ""
    rgba = png(np.zeros((4, 4, 4), np.uint8))
    assert colour_note(rgba, "t.png", 3).endswith("(t.png RGBA->RGB); transparent pixels are black")
    assert colour_note(png(np.zeros((4, 4), np.uint8)), "g.png", 3) == ""


def test_a_file_over_the_limit_is_not_said_to_be_the_limit():
    """The route reads MAX_BYTES + 1 bytes of a larger file (a chunked upload has no
    Content-Length to refuse first): a 20 MiB file was "10.0 MiB; ... up to 10 MiB"."""
    from cnnlab.explorer.upload import MAX_BYTES, UploadError, check_header

    with pytest.raises(UploadError) as refused:
        check_header(b"\0" * (MAX_BYTES + 1), "big.png")
    assert refused.value.status == 413
    assert "over 10 MiB" in str(refused.value) and "10.0 MiB" not in str(refused.value)


def test_a_thin_image_that_would_resize_to_gigabytes_is_refused_before_decoding(monkeypatch):
    """A 1×400,000 PNG (467 bytes) passes the pixel guard (0.4 M pixels), but covering 28×28
    resizes it to 28×11,200,000 first: 1.9 GB and 3 s of one request. Truth: the cover
    formula (scale max(28/1, 28/400,000) = 28)."""
    from cnnlab.explorer import upload
    from cnnlab.explorer.upload import UploadError, read_upload

    real = upload.read_for_run
    decoded = []
    monkeypatch.setattr(upload, "read_for_run", lambda *a: decoded.append(a) or real(*a))
    array = np.zeros((1, 400_000), np.uint8)
    with pytest.raises(UploadError) as refused:
        read_upload(png(array), "thin.png", (1, 28, 28))
    assert refused.value.status == 413 and "28×11,200,000" in str(refused.value)
    assert not decoded  # refused from the header: nothing decoded, nothing resized
    pixels, size = read_upload(png(np.zeros((40, 400), np.uint8)), "wide.png", (1, 28, 28))
    assert pixels.shape == (1, 1, 28, 28) and size == (40, 400)  # 1:10 is read as before
