"""A file under an image's name that holds no image says what it holds: an empty file (a
copy that never finished), a Git LFS pointer (a repository cloned without `git lfs pull`:
every image of the folder is one, and each class was "empty"), text (an error page saved as
photo.jpg). All were "not a readable image (no image format PIL knows)". Truth: the bytes
written here."""

from __future__ import annotations

import pytest

from cnnlab.data.folder import image_folder
from cnnlab.data.image import read_image
from cnnlab.errors import DataError
from folder_images import save, two_classes

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 12345\n"
CASES = [
    (b"", r"the file is empty \(0 bytes\)"),
    (LFS, "a Git LFS pointer .* `git lfs pull`"),
    (b"<html><body>\n  404 Not Found</body></html>", "text, beginning '<html><body> 404 Not Found"),
    ("caf\u00e9 ".encode() * 200, "it is text, beginning 'café café"),  # é cut at byte 512
]


@pytest.mark.parametrize(("data", "says"), CASES)
def test_a_file_holding_no_image_says_what_it_holds(tmp_path, data, says):
    path = tmp_path / "photo.JPG"
    path.write_bytes(data)
    with pytest.raises(DataError, match=rf"photo\.JPG: not a readable image.*{says}"):
        read_image(path, 3)


def test_binary_junk_keeps_the_plain_reason(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(DataError) as error:
        read_image(path, 1)
    assert str(error.value) == f"{path}: not a readable image (no image format PIL knows)"


def test_a_folder_names_each_file_by_what_it_holds(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "cat" / "empty.png").write_bytes(b"")
    (tmp_path / "dog" / "page.png").write_text("Access denied")
    ds = image_folder(tmp_path)
    assert len(ds) == 6
    assert sorted(ds.skipped) == [
        (str(tmp_path / "cat" / "empty.png"),
         "not a readable image: the file is empty (0 bytes); copy or download it again"),
        (str(tmp_path / "dog" / "page.png"),
         "not a readable image: it is text, beginning 'Access denied'"),
    ]  # fmt: skip


def test_a_class_of_lfs_pointers_says_to_fetch_them(tmp_path):
    save(tmp_path / "cat" / "c.png", 10)
    (tmp_path / "dog").mkdir()
    for i in range(3):
        (tmp_path / "dog" / f"d{i}.png").write_bytes(LFS)
    with pytest.raises(DataError, match=r"dog: empty class .*d0\.png.*git lfs pull"):
        image_folder(tmp_path)


def test_a_named_heic_says_to_convert_it(tmp_path):
    """`predict RUN IMG_0001.HEIC` said "no image format PIL knows"; a folder said what to do."""
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(DataError, match=r"HEIC is no format Pillow decodes; convert it to PNG"):
        read_image(path, 3)
