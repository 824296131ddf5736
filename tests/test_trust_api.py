"""cnnlab.train.train from Python: the config a run started with resumes it, arguments of
the wrong type are one ConfigError before anything is written, and nothing is printed."""

from __future__ import annotations

import dataclasses

import pytest

from cnnlab.errors import ConfigError, RunError
from cnnlab.train import TrainConfig, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = tiny_spec(10)


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


@pytest.mark.parametrize(
    "options, words",
    [
        ({"config": {"epochs": 1}}, "config must be a TrainConfig"),
        ({"on_epoch": "print"}, "on_epoch must be callable"),
        ({"out": 123}, "out must be a directory path"),
    ],
)
def test_arguments_of_the_wrong_type_are_one_error_before_any_write(
    options, words, tmp_path, monkeypatch
):
    """They were an AttributeError, a TypeError after the first epoch (its run left
    behind) and a TypeError from pathlib."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=words):
        train(TINY, "digits", **{"out": tmp_path / "run", **options})
    assert list(tmp_path.iterdir()) == []


def test_a_module_given_to_resume_a_spec_run_is_refused(tmp_path):
    """It was set aside without a word: the run's spec was trained and returned, the module
    passed in stayed untouched."""
    from torch import nn

    config = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0)
    train(TINY, "digits", tmp_path / "run", config)
    with pytest.raises(RunError, match="with a Sequential object: the run trains its spec.yaml"):
        train(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), None, tmp_path / "run", resume=True)


def test_an_os_pathlike_out_is_a_path(tmp_path):
    """Any os.PathLike names a directory (pytest's py.path.local is one, not a Path)."""

    class Where:
        def __fspath__(self) -> str:
            return str(tmp_path / "run")

    with pytest.raises(ConfigError, match="config must be a TrainConfig"):  # out passed
        train(TINY, "digits", Where(), {"epochs": 1})
