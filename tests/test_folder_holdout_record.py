"""A folder without DIR/test has its test images drawn from what it holds (a seeded 20 %
hold-out): a file added, removed or renamed later redraws it, and eval, the report and probe
then scored images the run had trained on as if unseen. A run records the files the hold-out
is drawn from (config.json's "holdout") and every command that reads its data checks them.
Truth: the hold-out itself (`split_files`) before and after the change."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import folder
from cnnlab.data.folder import split_files
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, loop, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY2 = tiny_spec(2, name="tiny2")
CONFIG = TrainConfig(epochs=1, batch_size=8, precision="fp32", bn_recalibrate=0, tta=False)


def _save(path, value) -> None:
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _folder(root, layout: bool = False):
    """Two classes of 20 flat 8×8 images (one class dark, one light); with `layout`, as
    DIR/train and DIR/test."""
    for split in ("train", "test") if layout else ("",):
        for name, base in (("dark", 0), ("light", 160)):
            (root / split / name).mkdir(parents=True)
            for i in range(20):
                _save(root / split / name / f"{i:02d}.png", base + i)
    return root


def test_a_folder_changed_since_training_is_refused_where_its_test_images_are_read(tmp_path):
    data, out = _folder(tmp_path / "imgs"), tmp_path / "run"
    train(TINY2, str(data), out, CONFIG)
    assert "holdout" in json.loads((out / "config.json").read_text())
    _, _, test_before = split_files(data, "test")
    _, _, train_before = split_files(data, "train")
    _save(data / "dark" / "00a.png", 3)  # one image added
    _, _, test_after = split_files(data, "test")
    leaked = {f for f, _ in test_after} & {f for f, _ in train_before}
    assert leaked  # the truth: the new hold-out holds images the run trained on
    with pytest.raises(RunError, match="has changed since the run held out.*restore"):
        load_run(out).dataset("test")
    assert main(["eval", str(out)]) == 2
    (data / "dark" / "00a.png").unlink()
    assert {f for f, _ in split_files(data, "test")[2]} == {f for f, _ in test_before}
    assert len(load_run(out).dataset("test")) == len(test_before)
    assert main(["eval", str(out)]) == 0


def test_a_fixed_test_folder_and_a_named_set_record_no_hold_out(tmp_path):
    data = _folder(tmp_path / "imgs", layout=True)
    train(TINY2, str(data), tmp_path / "run", CONFIG)
    assert "holdout" not in json.loads((tmp_path / "run" / "config.json").read_text())
    _save(data / "train" / "dark" / "new.png", 5)  # DIR/test is fixed: nothing redrawn
    assert len(load_run(tmp_path / "run").dataset("test")) == 40


def test_a_run_recorded_before_the_check_opens_as_before(tmp_path, monkeypatch):
    data, out = _folder(tmp_path / "imgs"), tmp_path / "run"
    monkeypatch.setattr(loop, "holdout_record", lambda data: {})  # as a run made before it
    train(TINY2, str(data), out, CONFIG)
    monkeypatch.undo()
    assert "holdout" not in json.loads((out / "config.json").read_text())
    assert len(load_run(out).dataset("test")) == 8


class Killed(BaseException):
    """Stands for SIGKILL after the first epoch's checkpoint."""


def test_a_folder_run_of_an_earlier_reader_is_told_why_it_cannot_resume(tmp_path, monkeypatch):
    """A folder run made when the images came in class order (before the interleaved order
    and the hold-out record) draws another validation split now: its resume was refused as
    'data has changed', which it had not."""
    data, out = _folder(tmp_path / "imgs"), tmp_path / "run"
    monkeypatch.setattr(loop, "holdout_record", lambda data: {})
    monkeypatch.setattr(folder, "interleaved_order", lambda labels, seed: np.arange(len(labels)))

    def killed(row, epochs):
        raise Killed

    with pytest.raises(Killed):
        train(
            TINY2, str(data), out, TrainConfig(**{**CONFIG.to_dict(), "epochs": 2}), on_epoch=killed
        )
    monkeypatch.undo()
    with pytest.raises(RunError, match="has changed.*or the run was made by an earlier cnnlab"):
        train(TINY2, None, out, None, resume=True)
