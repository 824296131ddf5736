"""Reading a folder reports its progress as the library's long loops do
(`cnnlab.inspect.progress`: 0 done first, then up to the total), so a command can draw a
bar: a folder of 48-megapixel photos takes about a second an image and said nothing. Truth:
the files written (six, one unreadable, which counts as read)."""

from __future__ import annotations

from cnnlab.data import image_folder
from folder_images import two_classes


def test_each_file_read_is_reported(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "dog" / "bad.png").write_bytes(b"junk")
    calls = []
    ds = image_folder(tmp_path, progress=lambda *call: calls.append(call))
    assert len(ds) == 6 and len(ds.skipped) == 1
    assert calls == [(k, 7, "reading images") for k in range(8)]


def test_a_split_reports_its_own_files(tmp_path):
    two_classes(tmp_path)
    calls = []
    image_folder(tmp_path, split="test", progress=lambda *call: calls.append(call))
    assert calls[0] == (0, 2, "reading images") and calls[-1] == (2, 2, "reading images")
