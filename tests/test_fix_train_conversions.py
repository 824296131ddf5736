"""`cnnlab train` counts a folder's conversions by kind, as `cnnlab data` does: it showed the
first three distinct changes, mostly sizes, and hid the rest behind '...' ("converted 58
images (50x50->28x28, CMYK->L, 70x50->28x28, ...)": RGB->L unsaid). Truth: Pillow's mode and
size of each file written."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnnlab.cli.train import print_data_notes
from cnnlab.data.folder import image_folder


def test_every_kind_of_conversion_is_counted(tmp_path, capsys):
    rng = np.random.default_rng(0)
    files = {  # name: (mode, (W, H))
        "rgb50": ("RGB", (50, 50)), "rgb70": ("RGB", (70, 50)), "rgb28": ("RGB", (28, 28)),
        "cmyk": ("CMYK", (70, 50)), "bilevel": ("1", (28, 28)), "gray": ("L", (28, 28)),
        "gray60": ("L", (60, 28)),
    }  # fmt: skip
    for i, (name, (mode, size)) in enumerate(files.items()):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        ext = "jpg" if mode == "CMYK" else "png"  # PNG holds no CMYK
        Image.fromarray(pixels).convert(mode).save(tmp_path / f"c{i % 2}" / f"{name}.{ext}")
    modes = [Image.open(p).mode for p in sorted(tmp_path.rglob("*.*"))]
    sizes = [Image.open(p).size for p in sorted(tmp_path.rglob("*.*"))]
    data = image_folder(tmp_path, channels=1, size=28)
    print_data_notes({"skipped": [], "converted": data.converted})
    line = capsys.readouterr().out.strip()
    want = {f"{modes.count(m)} {m}->L" for m in ("RGB", "CMYK", "1")}
    want.add(f"{sum(s != (28, 28) for s in sizes)} resized")
    changed = sum(m != "L" or s != (28, 28) for m, s in zip(modes, sizes, strict=True))
    assert line.startswith(f"converted {changed} images to the model's input (")
    assert set(line.split(" (", 1)[1].rstrip(")").split(", ")) == want, line
