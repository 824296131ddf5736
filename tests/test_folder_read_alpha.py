"""Transparent pixels are read over black. A black drawing on a transparent background (line
art as drawing apps export it) then is blank, every pixel 0: a folder of them trained on
blank images without a word. Such a file is refused, naming it and the fix; every image
over black still shows is read as before. Truth: the composite computed here from the
pixels written, round(colour × alpha / 255)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import image_folder, read_image
from cnnlab.errors import DataError


def _stroke_alpha() -> np.ndarray:
    """A 12×12 antialiased diagonal stroke as alpha: 0 off it, up to 255 on it."""
    y, x = np.mgrid[0:12, 0:12]
    return np.clip(255 - 120 * np.abs(x - y), 0, 255).astype(np.uint8)


def _save(path, colour: int, alpha: np.ndarray, mode: str) -> np.ndarray:
    """An image of one `colour` whose `alpha` varies; the over-black composite, as truth."""
    value = np.full(alpha.shape, colour, np.uint8)
    bands = [value, alpha] if mode == "LA" else [value, value, value, alpha]
    Image.fromarray(np.stack(bands, axis=2), mode).save(path)
    return np.round(value.astype(float) * alpha / 255)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_a_black_drawing_on_transparency_is_refused_naming_the_fix(tmp_path, mode):
    path = tmp_path / "sketch.png"
    composite = _save(path, 0, _stroke_alpha(), mode)
    assert composite.min() == composite.max() == 0  # blank over black: why it is refused
    with pytest.raises(DataError, match=r"sketch\.png: a black drawing on a transparent .*white"):
        read_image(path, 1)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_what_still_shows_over_black_is_read_as_the_composite(tmp_path, mode):
    alpha = _stroke_alpha()
    for colour in (255, 90):  # a white or gray drawing: the stroke shows
        composite = _save(tmp_path / "x.png", colour, alpha, mode)
        got = read_image(tmp_path / "x.png", 1)[0].numpy()
        assert np.abs(got.astype(int) - composite).max() <= 1  # Pillow's luma rounding
    _save(tmp_path / "clear.png", 0, np.zeros((4, 4), np.uint8), mode)  # nothing to lose
    assert read_image(tmp_path / "clear.png", 1).eq(0).all()


def test_a_folder_names_the_drawings_and_a_class_of_them_says_the_fix(tmp_path):
    for i in range(3):
        (tmp_path / "ink").mkdir(exist_ok=True)
        (tmp_path / "chalk").mkdir(exist_ok=True)
        _save(tmp_path / "ink" / f"{i}.png", 0, np.roll(_stroke_alpha(), i, 1), "LA")
        _save(tmp_path / "chalk" / f"{i}.png", 255, np.roll(_stroke_alpha(), i, 0), "LA")
    with pytest.raises(DataError, match=r"ink: empty class .*black drawing on a .*white"):
        image_folder(tmp_path)
    Image.fromarray(np.full((12, 12), 40, np.uint8)).save(tmp_path / "ink" / "gray.png")
    ds = image_folder(tmp_path)
    assert len(ds) == 4 and [p.rsplit("/", 1)[1] for p, _ in ds.skipped] == [
        "0.png",
        "1.png",
        "2.png",
    ]
