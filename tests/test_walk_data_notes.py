"""`cnnlab data DIR` names a class that has no image in the test split: a folder's class of
one image (20 % of 1 rounds to none) is trained on but never measured."""

from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.cli import main


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_a_class_left_out_of_the_holdout_is_named(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", {"cat": 10, "dog": 10, "fish": 1})
    assert round(0.2 * 1) == 0 and round(0.2 * 10) == 2  # what a 20 % hold-out takes
    assert main(["data", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "no test image of fish:" in out
    assert "no test image of cat" not in out and "dog:" not in out


def test_no_note_when_every_class_is_tested(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", {"cat": 5, "dog": 5})
    assert main(["data", str(root)]) == 0
    assert "no test image" not in capsys.readouterr().out
