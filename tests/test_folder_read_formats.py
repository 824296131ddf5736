"""The pixels cnnlab reads from the files people have, against truth computed from the file
apart from cnnlab's reader: a phone JPEG's eight EXIF orientations (numpy's flips and
rotations of the stored pixels, by the EXIF table), a CMYK JPEG (Pillow's formula on the
decoded inks), 16-bit RGB (each value ÷ 257), a CIELAB TIFF (LittleCMS), a 1-bit fax TIFF
(the bits written), in folders with upper-case extensions and names that are not ASCII."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from cnnlab.data import image_folder, read_image

# EXIF orientation -> what the viewer does to the stored pixels (EXIF 2.3, tag 0x0112)
UPRIGHT = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.swapaxes(a, 0, 1),  # transpose
    6: lambda a: np.rot90(a, -1),  # 90° clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transverse
    8: lambda a: np.rot90(a, 1),  # 90° counter-clockwise
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_a_phone_jpeg_is_upright_by_each_exif_orientation(tmp_path, orientation):
    y, x = np.mgrid[0:16, 0:24]
    stored = np.stack([x * 10, y * 15, x * y % 256], axis=2).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "IMG_0001.JPG"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    with Image.open(path) as img:
        decoded = np.asarray(img.convert("RGB"))  # the stored pixels, not turned
    got = read_image(path, 3).permute(1, 2, 0).numpy()
    assert got.tolist() == UPRIGHT[orientation](decoded).tolist()


def test_a_cmyk_jpeg_is_pillows_ink_formula(tmp_path):
    inks = np.random.default_rng(0).integers(0, 256, (4, 6, 4), np.uint8)
    path = tmp_path / "print.jpg"
    Image.fromarray(np.repeat(np.repeat(inks, 8, 0), 8, 1), "CMYK").save(path, quality=100)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        c, m, yk, k = np.moveaxis(np.asarray(img).astype(float), 2, 0)
    truth = np.stack([(255 - v) * (255 - k) / 255 for v in (c, m, yk)], axis=2)
    got = read_image(path, 3).permute(1, 2, 0).numpy().astype(float)
    assert np.abs(got - truth).max() <= 1


def _png16_rgb(path, values: np.ndarray) -> None:
    h, w, _ = values.shape
    rows = b"".join(b"\x00" + values[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_16_bit_rgb_is_within_one_level_of_its_values_over_257(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    _png16_rgb(tmp_path / "scan.png", values)
    got = read_image(tmp_path / "scan.png", 3).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - np.round(values / 257.0)).max() <= 1  # Pillow keeps the high byte


def test_a_cielab_tiff_is_its_srgb_colours(tmp_path):
    lab = Image.new("LAB", (2, 1))
    lab.putpixel((0, 0), (128, 128, 128))  # L* 50, neutral: mid gray
    lab.putpixel((1, 0), (136, 208, 195))  # a red
    lab.save(tmp_path / "lab.tif")
    to_srgb = ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    with Image.open(tmp_path / "lab.tif") as img:
        truth = np.asarray(ImageCms.applyTransform(img, to_srgb)).astype(int)
    got = read_image(tmp_path / "lab.tif", 3).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - truth).max() <= 2


def test_a_fax_tiff_uppercase_and_non_ascii_names_in_a_folder(tmp_path):
    bits = np.random.default_rng(2).integers(0, 2, (8, 8)).astype(bool)
    (tmp_path / "café").mkdir()
    (tmp_path / "猫").mkdir()
    Image.fromarray(bits).save(tmp_path / "café" / "ФАКС.TIF", compression="group4")
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "猫" / "写真.PNG")
    ds = image_folder(tmp_path)
    assert ds.classes == ("café", "猫") and ds.shape == (1, 8, 8) and not ds.skipped
    assert ds.images[ds.labels == 0][0, 0].numpy().tolist() == (bits * 255).tolist()
    assert ds.images[ds.labels == 1].eq(77).all()
