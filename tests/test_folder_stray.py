"""Image files beside the class folders are listed as a class folder lists its own: a HEIC
or camera-raw file there is named as a PNG is (one in a class folder is named as skipped)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.data.folder import stray_images


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_stray_images_lists_what_a_class_folder_lists(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        touch(root / cls / "a.png")
    wanted = [touch(root / n) for n in ("IMG_1.HEIC", "b.png", "c.dng", "d.JPG")]
    touch(root / ".e.png")  # hidden
    touch(root / "notes.txt")  # no image
    (root / "f.png").mkdir()  # a folder named like an image is a class
    assert stray_images(root) == sorted(wanted)
    assert stray_images(root / "cat" / "a.png") == [] and stray_images(tmp_path / "none") == []


def test_stray_images_of_a_train_test_layout(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            touch(root / split / cls / "a.png")
    wanted = [
        touch(root / "x.heif"),
        touch(root / "train" / "y.png"),
        touch(root / "test" / "z.nef"),
    ]
    assert stray_images(root) == sorted(wanted)
