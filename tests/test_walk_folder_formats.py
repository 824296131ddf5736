"""A user's own image folder: every format Pillow writes and reads back is an image of its
class, and a photo format Pillow cannot decode is named as skipped, never dropped unseen."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import image_folder


def _save(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), color, np.uint8)).save(path)


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    for cls, color in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        for name in ("x.png", "x.tif", "x.TIFF", "x.gif", "x.jfif"):
            _save(root / cls / name, color)
    (root / "a" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (root / "b" / "notes.txt").write_text("not an image")
    return root


def test_every_format_pillow_reads_back_is_loaded(scans):
    readable = [p for p in sorted(scans.rglob("*")) if p.is_file()]
    readable = [p for p in readable if _pillow_reads(p)]
    ds = image_folder(scans)
    assert len(ds) == len(readable) == 10  # 5 formats x 2 classes
    for label, color in ((0, (200, 0, 0)), (1, (0, 200, 0))):
        red, green = ds.images[ds.labels == label][:, :2, 4, 4].float().mean(0).tolist()
        assert abs(red - color[0]) < 8 and abs(green - color[1]) < 8


def test_an_undecodable_photo_format_is_skipped_by_name(scans, capsys):
    ds = image_folder(scans)
    [(path, reason)] = ds.skipped  # the .txt is not an image file: ignored
    assert path.endswith("IMG_0001.HEIC") and "HEIC" in reason and "PNG or JPEG" in reason
    assert not _pillow_reads(Path(path))
    assert main(["data", str(scans), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["train"]["skipped"]
    assert [Path(p).name for p, _ in shown] == ["IMG_0001.HEIC"]


def _pillow_reads(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False
