"""A class name with an accent may be stored as one character (é, NFC: Linux, Windows) or as
a letter and a combining accent (e + ◌́, NFD: names from a Mac, kept by zip and rsync). Both
print alike. A train/ folder from a Mac and a test/ folder made here: the test class was
"not in train"; two class folders so named in one tree were two classes of one name on
screen. Truth: the labels given by the folders the files were written to."""

from __future__ import annotations

import unicodedata

import pytest

from cnnlab.data import image_folder
from cnnlab.errors import DataError
from folder_images import save

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_a_test_folder_names_a_class_as_train_does_though_spelled_otherwise(tmp_path):
    assert NFC != NFD and len(NFD) == 5
    for i in range(2):
        save(tmp_path / "train" / NFD / f"{i}.png", 200)
        save(tmp_path / "train" / "thé" / f"{i}.png", 20)
    save(tmp_path / "test" / NFC / "0.png", 201)
    save(tmp_path / "test" / "thé" / "0.png", 21)
    train = image_folder(tmp_path, split="train")
    test = image_folder(tmp_path, split="test")
    assert test.classes == train.classes == (NFD, "thé")
    for ds in (train, test):
        bright = ds.images.flatten(1).float().mean(1) > 100
        assert ds.labels[bright].eq(0).all() and ds.labels[~bright].eq(1).all()


def test_two_folders_of_one_shown_name_are_refused(tmp_path):
    save(tmp_path / NFC / "a.png", 1)
    save(tmp_path / NFD / "b.png", 2)
    save(tmp_path / "thé" / "c.png", 3)
    with pytest.raises(DataError, match=r"more than one class named 'café' .*accent"):
        image_folder(tmp_path)
