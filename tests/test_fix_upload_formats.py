"""The explorer's upload reads every format an image folder, predict and explain read: it
accepted PNG, JPEG, BMP and WebP only, so scan.tif was refused though `cnnlab train` on a
folder of it and `cnnlab predict RUN scan.tif` read it. Truth: Pillow's own format of each
extension (`Image.registered_extensions`) and its decoding of the saved bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.image import IMAGE_EXTENSIONS, read_image
from cnnlab.explorer.upload import UploadError, read_upload


@pytest.mark.parametrize("extension", IMAGE_EXTENSIONS)
def test_an_upload_in_any_format_a_folder_reads_is_read_as_predict_reads_it(tmp_path, extension):
    fmt = Image.registered_extensions()[extension]
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / f"scan{extension}"
    Image.fromarray(pixels).save(path, format=fmt)
    got, size = read_upload(path.read_bytes(), path.name, (3, 28, 28))
    assert size == (30, 40)
    assert torch.equal(got[0], read_image(path, 3, (28, 28)))


def test_a_camera_jpeg_with_a_second_picture_is_read():
    """Pillow opens a JPEG holding MP (multi-picture) data as format MPO: a .jpg to a folder."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (40, 30), (0, 0, 0))]
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    got, size = read_upload(buffer.getvalue(), "camera.jpg", (3, 28, 28))
    assert size == (30, 40) and got[0, 0].float().mean() > 150  # the first picture, red


def test_a_refusal_names_the_formats_read():
    with pytest.raises(UploadError) as refused:
        read_upload(b"plain text, not an image\n", "notes.txt", (1, 28, 28))
    for name in ("PNG", "JPEG", "WebP", "TIFF", "GIF"):
        assert name in str(refused.value)
    assert "MPO" not in str(refused.value)
