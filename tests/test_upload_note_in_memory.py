"""The explorer's note on an upload's pixel format is read from its bytes in memory: the
upload was written to a temporary file a second time for it. Truth: Pillow's mode of the
same file on disk."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.image import mode_change
from cnnlab.explorer.upload import colour_note


def test_the_upload_note_needs_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(path)
    data = path.read_bytes()
    assert Image.open(path).mode == "RGBA"
    assert mode_change(io.BytesIO(data), 1) == mode_change(path, 1) == "RGBA->L"

    def no_temporary_file(*args, **kwargs):
        raise AssertionError("the note wrote the upload to a file")

    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_file)
    note = colour_note(data, "a.png", 1)
    assert "a.png RGBA->L" in note and "transparent pixels are black" in note


@pytest.mark.parametrize("channels", [1, 3])
def test_a_gray_upload_needs_no_note(channels):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, "PNG")
    assert colour_note(buffer.getvalue(), "g.png", channels) == ""
