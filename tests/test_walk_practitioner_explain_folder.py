"""`cnnlab explain RUN FOLDER` explains every image file under the folder, as `cnnlab predict
RUN FOLDER` predicts them: a folder was refused ('give the files in it (folder/*)'), and that
advice typed back stopped at the first file of the glob that is no image. A folder's unreadable
file is skipped and named; a file named on the command line stays an error. Truth: the
heatmap each file gets when it is named alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import build, load_spec
from cnnlab.cli import main
from cnnlab.train.checkpoint import save_weights

SPEC = {
    "name": "tiny",
    "input": [3, 16, 16],
    "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu",
               {"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap",
               {"linear": 3}],
}  # fmt: skip


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    spec = load_spec(SPEC)
    torch.manual_seed(0)
    (path / "spec.yaml").write_text(spec.to_yaml())
    config = {"data": "shapes", "classes": ["a", "b", "c"], "mean": [0.5] * 3,
              "std": [0.25] * 3, "input_shape": [3, 16, 16]}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    save_weights(path / "model.safetensors", build(spec).state_dict())
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (20, 24)), ("more/b.jpg", (16, 16))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_text("not an image")
    (folder / "notes.txt").write_text("no image file: not read")
    return folder


def _heatmaps(out):
    return {p.name: np.asarray(Image.open(p)) for p in out.iterdir()}


def test_a_folder_is_its_image_files_each_explained_as_named_alone(run_dir, photos, tmp_path,
                                                                   capsys):  # fmt: skip
    out = tmp_path / "maps"
    assert main(["explain", str(run_dir), str(photos), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert len(printed.out.splitlines()) == 2  # a.png, more/b.jpg
    assert f"skipped {photos / 'broken.png'}: not a readable image" in printed.err
    assert "notes.txt" not in printed.out + printed.err  # no image extension: not a candidate
    from_folder = _heatmaps(out)
    alone = {}
    for name in ("a.png", "more/b.jpg"):
        single = tmp_path / f"alone-{name.replace('/', '-')}"
        assert main(["explain", str(run_dir), str(photos / name), "--out", str(single)]) == 0
        alone.update(_heatmaps(single))
    assert from_folder.keys() == alone.keys() and len(alone) == 2
    for name, pixels in alone.items():
        assert np.array_equal(from_folder[name], pixels)


def test_a_named_unreadable_file_stays_an_error(run_dir, photos, tmp_path, capsys):
    out = tmp_path / "maps"
    code = main(["explain", str(run_dir), str(photos), str(photos / "broken.png"),
                 "--out", str(out)])  # fmt: skip
    assert code == 2
    assert "broken.png: not a readable image" in capsys.readouterr().err
    assert not out.exists()  # nothing written, no empty --out left behind
