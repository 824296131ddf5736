"""README's list of the image formats a folder may hold: each one, written by Pillow, is read
as an image of its class."""

import re
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data import image_folder

README = Path(__file__).resolve().parents[1] / "README.md"
SUFFIX = {"JPEG": "jpg", "WebP": "webp", "TIFF": "tif"}


def test_every_format_the_readme_lists_is_read(tmp_path):
    text = " ".join(README.read_text().split())
    listed = re.search(r"one sub-folder per class: ((?:\w+, )+\w+ or \w+) files", text)
    assert listed, "README no longer lists the formats of an image folder"
    formats = re.split(r", | or ", listed.group(1))
    assert len(formats) >= 5
    for cls in ("a", "b"):
        for name in formats:
            path = tmp_path / cls / f"x.{SUFFIX.get(name, name.lower())}"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((4, 4), 9, np.uint8)).save(path)
    ds = image_folder(tmp_path)
    assert len(ds) == 2 * len(formats) and not ds.skipped
