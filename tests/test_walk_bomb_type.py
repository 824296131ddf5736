"""An image above the pixel limit is a `TooLarge` naming the file once: the reader's own
error was caught by its catch-all for Pillow's failures (DataError is a ValueError) and
re-wrapped as "bomb.png: not a readable image (bomb.png: ...)", losing its type."""

import struct
import zlib

import pytest
from PIL import Image

from cnnlab.data.image import MAX_IMAGE_PIXELS, TooLarge, open_image


def _header_only_png(path, side):
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_a_bomb_is_too_large_and_names_the_file_once(tmp_path):
    bomb = _header_only_png(tmp_path / "bomb.png", 10_000)
    assert Image.open(bomb).size == (10_000, 10_000)  # Pillow reads the header as declared
    assert 10_000 * 10_000 > MAX_IMAGE_PIXELS
    with pytest.raises(TooLarge) as error:
        open_image(bomb)
    assert str(error.value).count(str(bomb)) == 1
    assert "not a readable image" not in str(error.value)
