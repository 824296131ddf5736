"""cnnlab.train.train from Python: the config a run started with resumes it, and nothing
is printed."""

from __future__ import annotations

import dataclasses

import pytest

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap",
               {"linear": 10}],
}  # fmt: skip


class Killed(BaseException):
    """Stands for SIGKILL after the first epoch's checkpoint."""


def test_the_config_a_run_started_with_resumes_it_and_nothing_is_printed(tmp_path, capfd):
    """flip=None (auto, the default) is stored as the data decided it (False for digits):
    the same TrainConfig was refused as 'flip None (run has False)'."""
    config = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0)
    assert config.flip is None

    def killed(row, epochs):
        raise Killed

    with pytest.raises(Killed):
        train(TINY, "digits", tmp_path / "run", config, on_epoch=killed)
    assert train(TINY, "digits", tmp_path / "run", config, resume=True)["epochs"] == 2
    other = dataclasses.replace(config, lr=0.5)
    with pytest.raises(RunError, match=r"different options: lr 0.5 \(run has 0.1\); resume"):
        train(TINY, "digits", tmp_path / "run", other, resume=True)
    assert capfd.readouterr() == ("", "")  # the library never prints
