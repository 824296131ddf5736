"""A folder that wraps the class folders one level down (`data/photos/{cat,dog}` given as
`data`) reads as one class: the error names the directory to give, and comes before any
image is decoded (mixed sizes raised the size error first, hiding it)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_splits
from cnnlab.errors import DataError


def _png(path: Path, side: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((side, side), np.uint8)).save(path)


def test_a_wrapper_folder_names_the_folder_of_classes(tmp_path):
    for cls, side in (("cat", 8), ("dog", 10)):  # two sizes: no size given is an error too
        for i in range(3):
            _png(tmp_path / "data" / "photos" / cls / f"{i}.png", side)
    with pytest.raises(DataError, match="only one class") as error:
        load_splits(tmp_path / "data")
    assert f"sub-folders of {tmp_path / 'data' / 'photos'}: give that directory" in str(error.value)
    train, test = load_splits(tmp_path / "data" / "photos", size=8)
    assert train.classes == ("cat", "dog") and test is not None


def test_one_real_class_keeps_the_advice_to_add_classes(tmp_path):
    for i in range(3):
        _png(tmp_path / "data" / "cat" / "sub" / f"{i}.png", 8)
    with pytest.raises(DataError, match="add a sub-folder of images for each other class"):
        load_splits(tmp_path / "data")
