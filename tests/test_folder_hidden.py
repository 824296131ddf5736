"""Hidden folders inside a class folder are left out, as hidden files and hidden class
folders are."""

from __future__ import annotations

from cnnlab.data import image_folder
from cnnlab.data.folder import expand_folders, list_images
from folder_images import save, two_classes


def test_images_in_a_hidden_folder_of_a_class_are_not_read(tmp_path):
    """A NAS's .@__thumb/ or an editor's .thumbnails/ inside a class folder holds copies of
    its images: they were read as more images of the class (duplicates, which a hold-out can
    put on both sides)."""
    root = tmp_path / "imgs"
    two_classes(root)
    save(root / "cat" / ".thumbnails" / "c0.png", 10)
    save(root / "dog" / "2024" / ".@__thumb" / "d9.png", 200)
    classes, files = list_images(root)
    assert classes == ("cat", "dog")
    assert [p.relative_to(root).as_posix() for p, _ in files] == [
        "cat/c0.png", "cat/c1.png", "cat/c2.png", "dog/d0.png", "dog/d1.png", "dog/d2.png",
    ]  # fmt: skip
    assert len(image_folder(root)) == 6
    assert expand_folders([str(root / "cat")]) == [
        str(root / "cat" / f"c{i}.png") for i in range(3)
    ]
