"""A resumed run trains on what the run started with, or says why it cannot: the data under
the run's path changed since (images added), the data moved to another path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train
from tiny_nets import imported_run, tiny_net_source, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY2 = tiny_spec(2, name="tiny2")
CONFIG = TrainConfig(epochs=2, batch_size=16, precision="fp32", bn_recalibrate=0, tta=False)


class Killed(BaseException):
    """Stands for SIGKILL after the first epoch's checkpoint."""


def _folder(root, n: int = 24) -> str:
    """train/ and test/ of two classes of 8×8 gray images: noise and flat grey."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("noise", "flat"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (8, 8)) if name == "noise" else np.full((8, 8), i * 9)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    return str(root)


def _stopped_after_epoch_1(data, out) -> None:
    def killed(row, epochs):
        raise Killed

    with pytest.raises(Killed):
        train(TINY2, data, out, CONFIG, on_epoch=killed)


def test_a_resume_on_data_changed_under_its_path_is_refused(tmp_path):
    """Images added to the run's folder: the resumed epochs would learn them, normalized by
    statistics config.json does not hold (every later command normalizes by config.json's).
    Truth: the same resume once the folder is as it was."""
    data, out = _folder(tmp_path / "imgs"), tmp_path / "run"
    _stopped_after_epoch_1(data, out)
    extra = tmp_path / "imgs" / "train" / "flat" / "extra.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(extra)
    with pytest.raises(RunError, match="has changed since the run started.*mean.*restore"):
        train(TINY2, None, out, None, resume=True)
    extra.unlink()
    assert train(TINY2, None, out, None, resume=True)["epochs"] == 2


def test_a_run_whose_data_directory_moved_says_how_to_bring_it_back(tmp_path):
    """config.json records a folder by its absolute path: moved (or the run copied to another
    machine), resume and every command failed with 'no such directory' and, given the new
    place, resume refused it. Each now says the path is gone and how to link it back; linked,
    the resume ends the run (the data check above vouches it is the same data)."""
    data, out = _folder(tmp_path / "imgs"), tmp_path / "run"
    _stopped_after_epoch_1(data, out)
    (tmp_path / "imgs").rename(tmp_path / "moved")
    for given in (None, str(tmp_path / "moved")):
        with pytest.raises(RunError, match=f"{data} no longer exists.*ln -s NEW_PLACE {data}"):
            train(TINY2, given, out, None, resume=True)
    (tmp_path / "imgs").symlink_to(tmp_path / "moved")
    assert train(TINY2, None, out, None, resume=True)["epochs"] == 2
    (tmp_path / "imgs").unlink()
    with pytest.raises(RunError, match="cannot load its data.*no longer exists.*ln -s"):
        load_run(out).dataset("test")


def test_a_run_whose_model_code_moved_says_how_to_bring_it_back(tmp_path):
    """A --model file.py:factory run records the file by its absolute path: moved, every
    command said 'restore the file'; it says how (the path, or a link), and a link works."""
    (tmp_path / "nets.py").write_text(tiny_net_source())
    run = imported_run(tmp_path, tiny_net_source(), data="digits")
    (tmp_path / "nets.py").rename(tmp_path / "moved.py")
    with pytest.raises(RunError, match=f"absolute path.*ln -s NEW_PLACE {tmp_path / 'nets.py'}"):
        load_run(run)
    (tmp_path / "nets.py").symlink_to(tmp_path / "moved.py")
    assert load_run(run).classes == tuple("0123456789")


def test_a_resume_on_changed_code_accepted_is_recorded(tmp_path, monkeypatch):
    """CNNLAB_ACCEPT_CHANGED_CODE=1 lets a run continue on an edited model file; its weights
    then come from two versions of the code, and config.json recorded only the first."""
    from cnnlab.train.rundir import read_config
    from cnnlab.train.source import parse_model_ref

    code, out = tmp_path / "nets.py", tmp_path / "run"
    code.write_text(tiny_net_source())

    def killed(row, epochs):
        raise Killed

    config = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)
    with pytest.raises(Killed):
        train(parse_model_ref(f"{code}:make"), "digits", out, config, on_epoch=killed)
    code.write_text(tiny_net_source() + "# edited\n")
    monkeypatch.setenv("CNNLAB_ACCEPT_CHANGED_CODE", "1")
    notes = train(None, None, out, None, resume=True)["notes"]
    assert any(f"resumed with {code} changed since the run started" in n for n in notes), notes
    assert read_config(out)["resumes"][0]["changed"] == notes
