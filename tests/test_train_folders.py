"""The trainer on image folders: a batch larger than the training split and a shift as large
as the image refused before training, --force keeping the old run when the new one is refused,
a data set's name winning over a directory of that name, skipped and converted images recorded
(--strict fails on them), and a relative folder stored absolute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import DataError
from cnnlab.train import ConfigError, TrainConfig, train
from test_train import QUICK, TINY

pytestmark = pytest.mark.usefixtures("one_thread")

# --- image folders -----------------------------------------------------------------------

TWO_CLASSES = {
    "name": "two",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 2},
    ],
}
FOLDER_QUICK = dict(epochs=1, batch_size=4, flip=False, tta=False, precision="fp32", ema=None)


def _folder(root: Path, per_class: int = 10) -> Path:
    """`root/dark/*.png` and `root/light/*.png`: 8×8 grey images, easy to tell apart."""
    for name, value in (("dark", 40), ("light", 200)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8), value + i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_batch_larger_than_the_training_split_is_refused_before_training(tmp_path):
    """10 images: 2 held out for test, 1 for validation, 7 to train: no batch of 64 fits
    (it used to crash with UnboundLocalError after an epoch of zero steps)."""
    root = _folder(tmp_path / "imgs", per_class=5)
    config = TrainConfig(**{**FOLDER_QUICK, "batch_size": 64})
    fix = r"batch_size 64 is larger than the 7 training images.*--batch-size 7 or less"
    with pytest.raises(ConfigError, match=fix):
        train(TWO_CLASSES, root, tmp_path / "run", config)
    assert not (tmp_path / "run" / "config.json").exists()  # refused before anything ran


def test_force_keeps_the_previous_run_when_the_new_one_is_refused(tmp_path):
    """--force deletes the old run only once the new one has passed its checks."""
    root = _folder(tmp_path / "imgs", per_class=5)
    out = tmp_path / "run"
    train(TWO_CLASSES, root, out, TrainConfig(**{**FOLDER_QUICK, "batch_size": 4}))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ConfigError, match="batch_size 64"):
        train(TWO_CLASSES, root, out, TrainConfig(**{**FOLDER_QUICK, "batch_size": 64}), force=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert "model.safetensors" in before


@pytest.mark.parametrize("option", ["tta_shift", "translate"])
def test_a_shift_as_large_as_the_image_is_refused_before_training(tmp_path, option):
    """Reflect padding needs a pad smaller than the image (8×8 here): --tta-shift 8 used to
    fail after all the training, with no model.safetensors written."""
    root = _folder(tmp_path / "imgs")
    config = TrainConfig(**{**FOLDER_QUICK, "tta": True, option: 8})
    with pytest.raises(ConfigError, match=f"{option} 8 must be smaller than the 8-px side"):
        train(TWO_CLASSES, root, tmp_path / "run", config)
    assert not (tmp_path / "run").exists()


def test_a_data_set_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    """As load_dataset does: `digits` is the bundled set even with ./digits in the way."""
    (tmp_path / "digits").mkdir()
    monkeypatch.chdir(tmp_path)
    result = train(TINY, "digits", tmp_path / "run", TrainConfig(**{**QUICK, "epochs": 1}))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == "digits"
    assert result["test_acc"] > 0.2  # real digits, not an empty folder


def test_folder_skips_and_conversions_are_returned_and_recorded_strict_fails(tmp_path):
    root = _folder(tmp_path / "imgs")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(root / "dark" / "rgb.png")
    (root / "light" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    config = TrainConfig(**FOLDER_QUICK)
    with pytest.raises(DataError, match="broken.png"):
        train(TWO_CLASSES, root, tmp_path / "strict", config, strict=True)
    result = train(TWO_CLASSES, root, tmp_path / "run", config)
    assert [Path(p).name for p, _ in result["skipped"]] == ["broken.png"]
    assert [(Path(p).name, why) for p, why in result["converted"]] == [("rgb.png", "RGB->L")]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["skipped"] == [list(s) for s in result["skipped"]]
    assert stored["converted"] == [list(c) for c in result["converted"]]
    # the machine it trained on, for the report: this CPU's name from /proc/cpuinfo
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        "",
    )
    assert (
        stored["machine"].startswith(cpu)
        and f"{torch.get_num_threads()} threads" in stored["machine"]
    )


def test_relative_data_dir_is_stored_absolute(tmp_path, monkeypatch):
    """eval, --resume and report run from other directories than the one training ran in."""
    from cnnlab.train.rundir import load_run

    _folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    train(TWO_CLASSES, "imgs", "run", TrainConfig(**FOLDER_QUICK))
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["data"] == str((tmp_path / "imgs").resolve())
    train(None, "imgs", "run", resume=True)  # the relative name still matches the run's
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert len(load_run(tmp_path / "run").dataset("test")) == 4  # 20 % of 20 images
