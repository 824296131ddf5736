"""The explorer's messages about image sizes name them one way: height × width, marked
"(H×W)" (the upload guard said width × height, the resize note height × width, so one
upload's two messages disagreed). Truth: PIL's `Image.size`, which is (width, height)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cnnlab.explorer.upload import MAX_PIXELS, UploadError, check_header, read_upload
from cnnlab.train.evaluate import resize_note


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
