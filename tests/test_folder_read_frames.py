"""Files of more than one frame. A camera's MPO JPEG (its photo, then a preview or a depth
map) is one picture: predict and the explorer said every such photo was "an animation or
pages" read at its first frame. Truth: the pixels written as the MPO's first image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnlab.data.image import frame_count, read_image
from cnnlab.data.notes import frames_note


def _mpo(path):
    y, x = np.mgrid[0:16, 0:24]  # smooth, so the JPEG keeps it within a few levels
    photo = np.stack([x * 10, y * 15, 120 + 0 * x], axis=2).astype(np.uint8)
    preview = Image.fromarray(np.full((4, 6, 3), 200, np.uint8))
    Image.fromarray(photo).save(path, format="MPO", save_all=True, append_images=[preview])
    return photo


def test_a_camera_mpo_is_one_picture_read_as_its_photo(tmp_path):
    path = tmp_path / "DSCF0001.JPG"
    photo = _mpo(path)
    with Image.open(path) as img:
        assert img.format == "MPO" and img.n_frames == 2
        decoded = np.asarray(img.convert("RGB"))  # the JPEG's own decoding of the photo
    assert np.abs(decoded.astype(int) - photo).mean() < 4  # it is the photo
    assert read_image(path, 3).permute(1, 2, 0).numpy().tolist() == decoded.tolist()
    assert frame_count(path) == 1
    assert frame_count(io.BytesIO(path.read_bytes())) == 1  # an upload's bytes
    assert frames_note([(path.name, frame_count(path))]) == ""


def test_an_animated_gif_still_counts_its_frames(tmp_path):
    frames = [Image.fromarray(np.full((5, 5), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert frame_count(tmp_path / "a.gif") == 3
    assert read_image(tmp_path / "a.gif", 1).unique().tolist() == [10]
