"""A palette image whose colours are all gray (a gray GIF) is read as gray: it was expanded
to RGB, so a folder of gray GIFs was read as 3-channel and predict said of one that a colour
image was converted to gray. Truth: Pillow's own palette expansion of the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data import image_folder
from cnnlab.data.image import mode_change, open_image, read_image


def ramp(h: int = 6, w: int = 10) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 4).astype(np.uint8)


def gray_gif(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ramp()).save(path)  # L saved as GIF: a palette of grays
    return path


def colour_gif(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ramp(), np.zeros_like(ramp()), 255 - ramp()], axis=2)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    return path


def test_a_gray_gif_is_read_as_gray_with_its_levels(tmp_path):
    path = gray_gif(tmp_path / "g.gif")
    with Image.open(path) as img:
        assert img.mode == "P"
        levels = np.asarray(img.convert("L"))
    assert open_image(path).mode == "L"
    assert np.array_equal(read_image(path, 1)[0].numpy(), levels)
    assert mode_change(path, 1) == ""  # nothing to say for a gray run
    assert mode_change(path, 3) == "L->RGB"


def test_a_folder_of_gray_gifs_is_one_channel_and_colour_stays_colour(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(3):
            gray_gif(root / cls / f"{i}.gif")
    assert image_folder(root).shape[0] == 1
    colour = colour_gif(tmp_path / "c.gif")
    assert open_image(colour).mode == "RGB" and mode_change(colour, 1) == "RGB->L"
    colour_gif(root / "b" / "c.gif")
    assert image_folder(root).shape[0] == 3
