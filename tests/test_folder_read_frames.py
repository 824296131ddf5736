"""Files of more than one frame, read at their first. A camera's MPO JPEG (its photo, then
a preview or a depth map) is one picture: predict and the explorer said every such photo was
"an animation or pages" read at its first frame. Truth: the pixels written as the MPO's
first image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnlab.data.folder import image_folder
from cnnlab.data.image import frame_count, read_image
from cnnlab.data.notes import frames_note
from folder_images import two_classes


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


def test_a_folder_names_the_files_read_at_their_first_frame(tmp_path):
    """A training folder of animated GIFs and multi-page TIFFs was read at their first
    frames without a word (predict and the explorer say it); they are listed with the
    images converted. Truth: the frames written, the first of each the image read."""
    two_classes(tmp_path)
    frames = [Image.fromarray(np.full((6, 6), v, np.uint8)) for v in (77, 200, 90)]
    frames[0].save(tmp_path / "cat" / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "dog" / "p.tif", save_all=True, append_images=frames[1:2])
    _mpo(tmp_path / "dog" / "photo.jpg")  # one picture: nothing to say of its frames
    ds = image_folder(tmp_path, size=6)
    assert sum(bool(ds.images[i].eq(77).all()) for i in range(len(ds))) == 2
    firsts = sorted(path for path, change in ds.converted if "first frame" in change)
    assert firsts == [str(tmp_path / "cat" / "a.gif"), str(tmp_path / "dog" / "p.tif")]
    assert dict(ds.converted)[str(tmp_path / "cat" / "a.gif")] == "L->RGB, first frame"
