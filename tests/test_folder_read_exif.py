"""A phone photo whose EXIF holds a bad block (a GPS pointer past the end, a cut entry) is
still turned upright by its orientation, and reading it warns nothing: Pillow's "Corrupt
EXIF data" UserWarning printed two lines of its source under predict's answer. Truth: the
4×8 image written with orientation 6 (rotate 90° clockwise to view) is 8×4, its first row
the written first column read bottom to top."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import read_image

ORIENTATION_6 = struct.pack(">HHIHxx", 0x0112, 3, 1, 6)
BAD_EXIF = {
    "gps pointer past the end": struct.pack(">H", 2)
    + ORIENTATION_6
    + struct.pack(">HHII", 0x8825, 4, 1, 5000)
    + struct.pack(">I", 0),
    "a cut entry": struct.pack(">H", 5) + ORIENTATION_6 + b"garbage",
}


@pytest.mark.parametrize("block", BAD_EXIF)
def test_a_photo_with_a_bad_exif_block_is_upright_without_a_warning(tmp_path, block):
    pixels = np.arange(4 * 8, dtype=np.uint8).reshape(4, 8) * 7
    path = tmp_path / "IMG_0001.png"  # lossless, so the truth is exact
    Image.fromarray(pixels).save(path, exif=b"MM\x00*" + struct.pack(">I", 8) + BAD_EXIF[block])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_image(path, 1)[0].numpy()
    assert got.tolist() == np.rot90(pixels, -1).tolist()
