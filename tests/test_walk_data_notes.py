"""`cnnlab data DIR` names a class that has no image in the test split: a folder's class of
one image (20 % of 1 rounds to none) is trained on but never measured."""

import json
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


def test_the_conversions_are_counted_by_kind(tmp_path, capsys):
    """A colour folder read as gray says how many images lost their colour (Pillow's modes
    of the files written), not only that some were converted."""
    root = tmp_path / "imgs"
    colour = np.zeros((6, 6, 4), np.uint8)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(colour[..., :3]).save(root / cls / f"rgb{i}.png")
        Image.fromarray(colour).save(root / cls / "alpha.png")
        Image.fromarray(colour[..., 0]).save(root / cls / "gray.png")
    modes = [Image.open(p).mode for p in sorted(root.rglob("*.png"))]
    assert sorted(set(modes)) == ["L", "RGB", "RGBA"]
    assert main(["data", str(root), "--channels", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    together = {}
    for split in ("train", "test"):
        for kind, n in info[split]["conversions"].items():
            together[kind] = together.get(kind, 0) + n
    assert together == {"RGB->L": modes.count("RGB"), "RGBA->L": modes.count("RGBA")}
    assert main(["data", str(root), "--channels", "1", "--size", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "converted (train):" in out and "RGB->L" in out and "resized" in out


def test_a_class_missing_from_a_test_folder_is_told_where_to_add_it(tmp_path, capsys):
    root = tmp_path / "imgs"
    _folder(root / "train", {"cat": 3, "dog": 3})
    _folder(root / "test", {"cat": 2})
    assert sorted(p.name for p in (root / "test").iterdir()) == ["cat"]
    assert main(["data", str(root)]) == 0
    out = "".join(capsys.readouterr().out.split())  # rich wraps lines, even inside a path
    said = f"no test image of dog: no accuracy is measured for it; add its images to {root}/test"
    assert "".join(said.split()) + "/<class>/" in out and "hold-out" not in out
