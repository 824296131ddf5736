"""Image files that are symlinks: one to an image is read as that image; one to nothing (the
photos of a drive that is not mounted) is named as skipped, where it was passed over without
a word (and a class of such links said only "empty class (no .png/... files)"). Truth: the
linked file's own pixels, and the links made here."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import image_folder, read_image
from cnnlab.data.folder import expand_folders
from cnnlab.errors import DataError
from folder_images import save, two_classes

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def test_a_link_to_an_image_is_that_image_and_a_link_to_nothing_is_named(tmp_path):
    root = tmp_path / "imgs"
    two_classes(root)
    target = tmp_path / "elsewhere" / "real.png"
    pixels = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
    target.parent.mkdir()
    Image.fromarray(pixels).save(target)
    (root / "cat" / "linked.png").symlink_to(target)
    gone = tmp_path / "unmounted" / "IMG_0001.JPG"
    (root / "dog" / "IMG_0001.JPG").symlink_to(gone)
    ds = image_folder(root)
    assert len(ds) == 7
    linked = [i for i in range(7) if ds.images[i, 0].equal(torch.from_numpy(pixels))]
    assert len(linked) == 1 and ds.labels[linked[0]] == 0
    assert ds.skipped == (
        (
            str(root / "dog" / "IMG_0001.JPG"),
            f"a symbolic link to {gone}, which does not exist; mount or copy what it links "
            "to, or remove the link",
        ),
    )


def test_a_class_of_links_to_nothing_says_so(tmp_path):
    save(tmp_path / "cat" / "c.png", 10)
    (tmp_path / "dog").mkdir()
    for i in range(2):
        (tmp_path / "dog" / f"d{i}.png").symlink_to(tmp_path / "nas" / f"d{i}.png")
    with pytest.raises(DataError, match=r"dog: empty class .*d0\.png.*which does not exist"):
        image_folder(tmp_path)


def test_predict_on_a_folder_names_a_link_to_nothing(tmp_path):
    save(tmp_path / "photos" / "a.png", 10)
    (tmp_path / "photos" / "b.png").symlink_to(tmp_path / "gone.png")
    files = expand_folders([str(tmp_path / "photos")])
    assert files == [str(tmp_path / "photos" / "a.png"), str(tmp_path / "photos" / "b.png")]
    with pytest.raises(DataError, match=r"b\.png: a symbolic link to .*gone\.png, which does not"):
        read_image(files[1], 1)


def test_a_link_target_that_is_not_utf8_is_named_printably(tmp_path):
    save(tmp_path / "a" / "0.png", 10)
    save(tmp_path / "b" / "0.png", 90)
    link = os.path.join(os.fsencode(tmp_path / "a"), b"x.png")
    os.symlink(b"/mnt/caf\xe9/x.png", link)  # a Latin-1 folder name on a drive not mounted
    ((_, why),) = image_folder(tmp_path).skipped
    assert why.startswith("a symbolic link to /mnt/caf\\xe9/x.png, which does not exist")
    why.encode("utf-8")  # prints anywhere: no lone surrogate
