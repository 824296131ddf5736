"""A PNG may name one colour transparent (a tRNS chunk on a gray or RGB image: what optipng
and oxipng make of an RGBA image whose alpha is only 0 and 255). Its transparent pixels are
read over black, as an alpha band's and a palette's transparent entry are; the colour
showed there, so an optimised icon read otherwise than its original. Truth: the RGBA
original composited over black by hand, round(colour × alpha / 255), and the written
16-bit levels ÷ 257."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import image_folder, read_image
from cnnlab.data.image import mode_change


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(path, pixels: np.ndarray, depth: int, colour_type: int, key: tuple[int, ...]):
    """A PNG written by hand (Pillow writes no tRNS colour from an RGBA image)."""
    h, w = pixels.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    rows = b"".join(b"\x00" + pixels[y].astype(dtype).tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"tRNS", struct.pack(f">{len(key)}H", *key))
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
    return path


def _icon() -> tuple[np.ndarray, np.ndarray]:
    """An 8×8 RGB icon on a white background, and its alpha (0 on the background)."""
    rgb = np.full((8, 8, 3), 255, np.uint8)
    rgb[2:6, 2:6] = (200, 40, 90)
    rgb[3:5, 3:5] = (10, 160, 250)
    alpha = np.where((rgb == 255).all(axis=2), 0, 255).astype(np.uint8)
    return rgb, alpha


@pytest.mark.parametrize("channels", [1, 3])
def test_an_optimised_icon_reads_as_its_rgba_original(tmp_path, channels):
    rgb, alpha = _icon()
    original = tmp_path / "icon_rgba.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(original)
    optimised = _png(tmp_path / "icon.png", rgb, 8, 2, (255, 255, 255))
    composite = np.round(rgb * (alpha[..., None] / 255.0)).astype(np.uint8)
    truth = composite if channels == 3 else np.asarray(Image.fromarray(composite).convert("L"))
    got = read_image(optimised, channels).permute(1, 2, 0).numpy().squeeze()
    assert got.tolist() == truth.tolist()
    assert (
        got.tolist() == read_image(original, channels).permute(1, 2, 0).numpy().squeeze().tolist()
    )
    assert mode_change(optimised, channels) == mode_change(original, channels)


def test_gray_and_16_bit_gray_with_a_transparent_level(tmp_path):
    gray = np.array([[0, 100, 200, 255]], np.uint8)
    path = _png(tmp_path / "g.png", gray, 8, 0, (100,))
    assert read_image(path, 1)[0].tolist() == [[0, 0, 200, 255]]
    assert mode_change(path, 1) == "LA->L"
    deep = np.array([[0, 1000, 30000, 65535]], np.uint16)
    path = _png(tmp_path / "g16.png", deep, 16, 0, (1000,))
    truth = np.round(np.where(deep == 1000, 0, deep) / 257.0)
    assert read_image(path, 1)[0].tolist() == truth.tolist()


def test_a_key_no_pixel_has_changes_nothing(tmp_path):
    rgb, _ = _icon()
    path = _png(tmp_path / "opaque.png", rgb, 8, 2, (1, 2, 3))
    assert read_image(path, 3).permute(1, 2, 0).numpy().tolist() == rgb.tolist()
    assert mode_change(path, 3) == ""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _png(tmp_path / "a" / "x.png", rgb, 8, 2, (1, 2, 3))
    _png(tmp_path / "b" / "y.png", rgb, 8, 2, (255, 255, 255))
    assert image_folder(tmp_path).converted == ((str(tmp_path / "b" / "y.png"), "RGBA->RGB"),)
