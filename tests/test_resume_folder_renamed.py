"""A folder run whose files were added, removed or renamed since it started is not resumed:
its test hold-out is drawn from the folder's file list, so the resumed epochs and the final
test would mix the run's test and training images, and every later command (eval, report,
probe) refuses the run. The resume compared only the training images' mean and std, which a
rename among like images leaves as they were: it trained on and wrote a run nothing could
open. The truth: the hold-out itself (`split_files`) before and after the rename."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.folder import split_files
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=2, batch_size=8, precision="fp32", bn_recalibrate=0, tta=False)


class Killed(BaseException):
    """Stands for SIGKILL after the first epoch's checkpoint."""


def _killed(row, epochs):
    raise Killed


def test_a_resume_after_a_rename_is_refused(tmp_path):
    data, out = tmp_path / "imgs", tmp_path / "run"
    for name, value in (("dark", 20), ("light", 200)):  # like images: one value per class
        (data / name).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(data / name / f"{i:02d}.png")
    with pytest.raises(Killed):
        train(tiny_spec(2), str(data), out, CONFIG, on_epoch=_killed)
    trained_on = {f for f, _ in split_files(data, "train")[2]}
    (data / "dark" / "00.png").rename(data / "dark" / "99.png")
    leaked = {f for f, _ in split_files(data, "test")[2]} & trained_on
    assert leaked  # the truth: the new hold-out holds images the run trained on
    with pytest.raises(RunError) as refused:
        train(None, None, out, resume=True)
    assert "files added, removed or renamed" in str(refused.value)
    assert "restore that data" in str(refused.value)
    (data / "dark" / "99.png").rename(data / "dark" / "00.png")
    train(None, None, out, resume=True)
    assert len(load_run(out).dataset("test")) == 8
