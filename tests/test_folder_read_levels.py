"""Deep gray files (32-bit float or integer, PIL modes F and I) whose values fit no range of
gray levels cnnlab reads were clipped without a word: a [-1, 1] float image read half black,
a 0..10^6 one white, an infinite pixel made every other black, NaN cast to whatever the
machine gave (with a RuntimeWarning). They are refused, naming the file; a [0, 1] float
image that resampling overshot a little (1.02) is read as [0, 1], not as 0..255 (black).
Truth: the values written, scaled by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import image_folder, read_image
from cnnlab.errors import DataError


def _tif(path, values, mode="F"):
    dtype = np.float32 if mode == "F" else np.int32
    Image.fromarray(np.asarray(values, dtype).reshape(2, 2), mode).save(path)
    return path


@pytest.mark.parametrize(
    ("values", "mode", "says"),
    [
        ([0.2, np.nan, 0.5, 1.0], "F", "NaN or infinite"),
        ([0.2, np.inf, 0.5, 1.0], "F", "NaN or infinite"),
        ([-1.0, -0.5, 0.5, 1.0], "F", r"span -1\.\.1, in none"),
        ([0.0, 1e6, 5e5, 1.0], "F", r"span 0\.\.1e\+06, in none"),
        ([0, 100_000, 70_000, 5], "I", r"32-bit integer pixels span 0\.\.100000"),
        ([-1000, 0, 3000, 5], "I", r"span -1000\.\.3000"),  # a CT scan's Hounsfield units
    ],
)
def test_values_in_no_range_of_gray_levels_are_refused(tmp_path, values, mode, says):
    path = _tif(tmp_path / "scan.tif", values, mode)
    with pytest.raises(DataError, match=rf"scan\.tif: its .*{says}"):
        read_image(path, 1)


@pytest.mark.parametrize(
    ("values", "white"),
    [
        ([-0.01, 0.25, 0.5, 1.02], 1.0),  # a [0, 1] image a resampling overshot
        ([0.0, 0.5, 1.0, 1.5], 1.0),  # FLOAT_SLACK: as an ImageSet judges float pixels
        ([0.0, 100.0, 200.0, 255.0], 255.0),
        ([0.0, 1000.0, 40000.0, 65535.0], 65535.0),
    ],
)
def test_float_levels_in_a_range_are_read_by_it(tmp_path, values, white):
    got = read_image(_tif(tmp_path / "f.tif", values), 1)[0].numpy()
    truth = np.clip(np.asarray(values, np.float32).astype(np.float64) * 255 / white, 0, 255)
    assert got.tolist() == truth.round().reshape(2, 2).tolist()


def test_a_folder_skips_and_names_them(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            _tif(tmp_path / c / f"{i}.tif", [0.0, 0.1 * i, 0.5, 1.0])
    _tif(tmp_path / "b" / "nodata.tif", [0.0, np.nan, 0.5, 1.0])
    ds = image_folder(tmp_path)
    assert len(ds) == 4
    assert [(p.rsplit("/", 1)[1], why[:30]) for p, why in ds.skipped] == [
        ("nodata.tif", "its float pixels include NaN o")
    ]
