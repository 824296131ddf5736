"""A folder of one class filed in sub-folders, whose class name is not UTF-8 (a Latin-1
'café' from an old archive): one error naming the sub-folders, printable."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from cnnlab.data import load_splits
from cnnlab.errors import DataError


def test_one_latin1_class_in_sub_folders_is_one_printable_error(tmp_path):
    for year in (b"2023", b"2024"):
        folder = os.path.join(os.fsencode(tmp_path), b"one", b"caf\xe9", year)
        os.makedirs(folder)
        Image.new("L", (8, 8), 128).save(os.fsdecode(os.path.join(folder, b"a.png")))
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path / "one"))
    message = str(err.value)
    message.encode("utf-8")  # no lone surrogates: it prints on any terminal
    assert "only one class ('caf\\xe9')" in message
    assert "sub-folders of " in message and "(2023, 2024)" in message
