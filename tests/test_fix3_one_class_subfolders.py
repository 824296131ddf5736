"""One class folder whose images are in sub-folders (`one/cat/2023`, `one/cat/2024`) may be a
wrapper of the classes or one class filed by date: the one-line error says both, naming the
sub-folders; it advised only "give one/cat as the data", which makes 2023 and 2024 the
classes. The sub-folders come from the listing already made, not another walk."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_splits
from cnnlab.errors import DataError


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)


def test_dated_sub_folders_of_one_class_get_both_possibilities(tmp_path, monkeypatch):
    for year in ("2023", "2024"):
        for i in range(3):
            _png(tmp_path / "one" / "cat" / year / f"{i}.png")
    (tmp_path / "one" / "cat" / "empty").mkdir()  # no image: not a possible class
    iterdir = Path.iterdir

    def no_walk_below_the_class(self):
        assert self != tmp_path / "one" / "cat", "the class folder was listed again"
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", no_walk_below_the_class)
    with pytest.raises(DataError) as error:
        load_splits(tmp_path / "one")
    message = str(error.value)
    assert "\n" not in message and "only one class ('cat')" in message
    assert "give that directory as the data if they (2023, 2024) are the classes" in message
    assert f"if 'cat' is one class, add a sub-folder of images to {tmp_path / 'one'}" in message
