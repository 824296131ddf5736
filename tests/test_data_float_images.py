"""A float TIFF (PIL mode F) of values in [0, 1] is read as its gray levels (1.0 is white);
it was read all black, every value under 1 of 255. 16-bit and 8-bit-range floats unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.image import open_as


@pytest.mark.parametrize(
    ("values", "white"),
    [
        (np.linspace(0.0, 1.0, 16, dtype=np.float32), 1.0),  # [0, 1] floats
        (np.linspace(0.0, 255.0, 16, dtype=np.float32), 255.0),  # 8-bit range in floats
        (np.linspace(0.0, 4000.0, 16, dtype=np.float32), 65535.0),  # past 255: 16-bit range
    ],
)
def test_a_float_tiff_is_read_by_its_range(tmp_path, values, white):
    path = tmp_path / "f.tif"
    Image.fromarray(values.reshape(4, 4), "F").save(path)
    got = np.asarray(open_as(path, 1), dtype=np.float64)
    expected = np.clip(values.reshape(4, 4) * 255.0 / white, 0, 255).round()
    assert np.array_equal(got, expected)
    if white == 1.0:
        assert got.max() == 255  # white, not the 1 of 255 it was


def test_a_16_bit_image_still_spans_65535(tmp_path):
    path = tmp_path / "i16.png"
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(path)
    assert np.asarray(open_as(path, 1)).tolist() == [[0, 255]]
