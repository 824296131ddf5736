"""A folder's hold-out is drawn among the files cnnlab can read. A HEIC or camera-raw file,
listed only to be named as skipped, reshuffled the test split (a run's eval then scored
images it had trained on) and could be drawn as a test image that never was one. Truth: the
split of the same folder without those files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.folder import image_folder, split_files
from cnnlab.errors import DataError

HEIC = b"\x00\x00\x00\x18ftypheic" + bytes(64)


def _folder(root: Path, heic: int) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for k in range(20):
            pixels = rng.integers(0, 256, (6, 6), "u1")
            Image.fromarray(pixels).save(root / name / f"{k:02d}.png")
        for k in range(heic):
            (root / name / f"IMG_{k:04d}.HEIC").write_bytes(HEIC)
    return root


@pytest.mark.parametrize("split", ["train", "test"])
def test_undecodable_files_do_not_move_the_hold_out(tmp_path, split):
    plain = _folder(tmp_path / "plain", heic=0)
    phone = _folder(tmp_path / "phone", heic=5)
    _, _, truth = split_files(plain, split)
    _, _, got = split_files(phone, split)
    readable = [(f.relative_to(phone), y) for f, y in got if f.suffix == ".png"]
    assert readable == [(f.relative_to(plain), y) for f, y in truth]
    heics = [f for f, _ in got if f.suffix == ".HEIC"]
    assert len(heics) == (10 if split == "train" else 0)  # named with the training part


def test_the_read_splits_hold_the_same_images(tmp_path):
    plain = _folder(tmp_path / "plain", heic=0)
    phone = _folder(tmp_path / "phone", heic=5)
    for split in ("train", "test"):
        a, b = image_folder(plain, split=split), image_folder(phone, split=split)
        assert a.images.equal(b.images) and a.labels.equal(b.labels)
    assert len(image_folder(phone, split="train").skipped) == 10


def test_a_class_of_undecodable_files_says_why(tmp_path):
    root = _folder(tmp_path / "f", heic=0)
    (root / "c").mkdir()
    (root / "c" / "IMG_0001.HEIC").write_bytes(HEIC)
    with pytest.raises(DataError, match=r"empty class .*IMG_0001\.HEIC.*PNG or JPEG"):
        image_folder(root, split="train")
