"""`cnnlab predict RUN DIR` predicts every image file under DIR (sorted, nested folders too,
hidden and non-image files left out), as the folder loader lists a class folder; a directory
without an image is one line naming it, exit 2."""

import os

import numpy as np
from PIL import Image

from cnnlab.cli import main
from tiny_nets import imported_run

NET = """
from torch import nn
def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


def test_a_folder_is_its_image_files(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    folder = tmp_path / "mine"
    (folder / "nested").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "nested/c.bmp"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("no image")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    expected = sorted(
        os.path.join(d, f)
        for d, _, files in os.walk(folder)
        for f in files
        if f.endswith((".png", ".jpg", ".bmp"))
    )
    capsys.readouterr()
    assert main(["predict", str(run), str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == expected


def test_a_folder_without_images_is_named(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "empty: a directory with no image file" in err
