"""An upload of many frames (an animated GIF, a multi-page TIFF) is answered for its first
frame, and the answer says so. Truths: Pillow's own frame count and first frame."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from cnnlab.explorer.upload import frames_note


def frames(fmt: str, n: int) -> bytes:
    """n 28×28 grey frames of different content, saved as one `fmt` file."""
    gen = np.random.default_rng(1)
    images = [Image.fromarray(gen.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(n)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def first_frame(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.seek(0)
        return np.asarray(img.convert("L"))


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "walk.gif"), ("TIFF", "scan.tif")])
def test_a_many_frame_upload_says_its_first_frame_is_read(client, fmt, name):
    data = frames(fmt, 3)
    with Image.open(io.BytesIO(data)) as img:
        assert img.n_frames == 3
    r = client.post("/api/predict", files={"image": (name, data, "application/octet-stream")})
    assert r.status_code == 200, r.text
    note = r.json().get("note", "")
    assert f"{name} holds 3 frames" in note and "first frame" in note, note
    url = r.json()["input"]
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(shown, first_frame(data))  # 28×28 grey: no resize, no conversion


def test_a_single_frame_upload_says_nothing_of_frames():
    assert frames_note(frames("GIF", 1), "still.gif") == ""
    assert frames_note(frames("PNG", 1), "still.png") == ""
