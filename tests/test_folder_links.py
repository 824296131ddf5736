"""Sub-folders of a class reached through a symlink are read, as a class folder that is a
symlink is, each real folder once (a link back up ends)."""

from __future__ import annotations

import os

import pytest

from cnnlab.data import image_folder
from cnnlab.data.folder import list_images
from folder_images import save, two_classes


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlinked_sub_folder_of_a_class_is_read_once_and_a_loop_ends(tmp_path):
    """A class folder that is a symlink was read, but a symlinked sub-folder inside one
    (cat/2023 -> an archive) was passed over without a word."""
    root = tmp_path / "imgs"
    two_classes(root)
    archive = tmp_path / "archive"
    save(archive / "old0.png", 50)
    save(archive / "old1.png", 51)
    (root / "cat" / "2023").symlink_to(archive, target_is_directory=True)
    (root / "cat" / "again").symlink_to(archive, target_is_directory=True)  # same folder twice
    (root / "dog" / "up").symlink_to(root / "dog", target_is_directory=True)  # a loop
    (tmp_path / "linked").symlink_to(root / "cat", target_is_directory=True)
    (root / "bird").symlink_to(tmp_path / "linked", target_is_directory=True)
    classes, files = list_images(root)
    assert classes == ("bird", "cat", "dog")
    counts = [sum(y == c for _, y in files) for c in range(3)]
    assert counts == [5, 5, 3]  # bird and cat: 3 + the archive's 2, once; dog's loop ends
    names = {p.name for p, y in files if y == 1}
    assert {"old0.png", "old1.png"} <= names
    assert len(image_folder(root)) == 13
