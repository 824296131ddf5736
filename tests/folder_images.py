"""Small image folders for the folder tests: one flat gray PNG per call, two classes of three."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6), value, np.uint8)).save(path)
    return path


def two_classes(root: Path) -> None:
    for i in range(3):
        save(root / "cat" / f"c{i}.png", 10 + i)
        save(root / "dog" / f"d{i}.png", 100 + i)
