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
