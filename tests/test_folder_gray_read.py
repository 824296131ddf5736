"""`channels=None` reads a gray image as L and a colour one as RGB, and a folder of both
repeats the gray ones into three channels: the arrays are those of reading every image as
RGB (and cutting them to one channel when all are gray), the reading it replaced, which took
twice the time on gray folders. Truth: each file read alone as RGB and fitted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.folder import image_folder
from cnnlab.data.image import fit, open_image, to_mode

SIZE = (12, 12)


def _images(rng) -> dict[str, Image.Image]:
    v = rng.integers(0, 256, (19, 23)).astype(np.uint8)
    return {
        "l": Image.fromarray(v),
        "la": Image.fromarray(np.stack([v, 255 - v], -1), "LA"),
        "i16": Image.fromarray(v.astype(np.uint16) * 257),
        "bilevel": Image.fromarray(v > 100),
    }


@pytest.mark.parametrize("colour", [False, True])
def test_gray_images_read_as_the_rgb_reading_gives(tmp_path, colour):
    rng = np.random.default_rng(0)
    files = []
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for name, img in _images(rng).items():
            files.append(tmp_path / cls / f"{name}.png")
            img.save(files[-1])
        if colour:
            files.append(tmp_path / cls / "rgb.png")
            Image.fromarray(rng.integers(0, 256, (15, 17, 3)).astype(np.uint8)).save(files[-1])
    got = image_folder(tmp_path, size=SIZE)
    files.sort()  # the reader lists each class sorted by name
    truth = np.stack([np.asarray(fit(to_mode(open_image(f), 3), SIZE)) for f in files])
    if not colour:  # every image gray: one channel
        assert got.images.shape[1] == 1
        truth = truth[..., :1]
    assert np.array_equal(got.images.permute(0, 2, 3, 1).numpy(), truth)


# A folder of gray modes only (L, LA, 16-bit) read with channels=None is the folder read with
# channels=1: the same one-channel images and the same conversions counted.


def photos(root, modes=("RGB",)):
    """Two classes of six 48×40 noise images, saved in `modes` in turn (also the memory test's)."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            rgb = Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
            rgb.convert(modes[i % len(modes)]).save(root / cls / f"{i}.png")
    return root


def test_an_all_gray_folder_reads_as_if_read_as_gray(tmp_path):
    """Gray modes (L, LA, 16-bit I;16 via 'I') read with channels=None equal channels=1."""
    root = photos(tmp_path / "g", modes=("L", "LA"))
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(root / "a" / "deep.png")
    assert Image.open(root / "a" / "deep.png").mode.startswith("I")
    found, gray = image_folder(root, size=16), image_folder(root, channels=1, size=16)
    assert found.shape == gray.shape == (1, 16, 16)
    assert (found.images == gray.images).all()
    assert found.converted == gray.converted
