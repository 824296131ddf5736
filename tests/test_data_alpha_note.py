"""An image with an alpha band but no transparent pixel (screenshots are often RGBA) is read
as its colours alone, so the note no longer says "transparent pixels are black" of it; one
transparent pixel keeps the note. Truth: the pixels `open_as` reads (the composite over black
changes nothing where alpha is 255)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.image import mode_change, open_as
from cnnlab.data.notes import channel_note


def _save(path, mode: str, alpha: int) -> None:
    bands = {"RGBA": 4, "LA": 2}[mode]
    a = np.full((4, 4, bands), 200, np.uint8)
    a[..., -1] = 255
    a[0, 0, -1] = alpha
    Image.fromarray(a, mode).save(path)


@pytest.mark.parametrize(
    ("mode", "channels", "opaque", "see_through"),
    [("RGBA", 1, "RGB->L", "RGBA->L"), ("RGBA", 3, "", "RGBA->RGB"), ("LA", 1, "", "LA->L")],
)
def test_alpha_is_named_only_where_a_pixel_is_transparent(tmp_path, mode, channels, opaque,
                                                          see_through):  # fmt: skip
    solid, clear = tmp_path / "solid.png", tmp_path / "clear.png"
    _save(solid, mode, 255)
    _save(clear, mode, 0)
    assert mode_change(solid, channels) == opaque
    assert mode_change(clear, channels) == see_through
    note = channel_note([("solid.png", mode_change(solid, channels))], channels)
    assert "transparent" not in note
    note = channel_note([("clear.png", mode_change(clear, channels))], channels)
    assert note.endswith("; transparent pixels are black")
    # the opaque image's pixels are its colours: the composite over black changed nothing
    plain = Image.open(solid).convert("L" if channels == 1 else "RGB")
    assert np.array_equal(np.asarray(open_as(solid, channels)), np.asarray(plain))
