"""`cnnlab demo --epochs 1` on a CPU without bf16 math is offered `--data digits` as the
quicker first look, not `cnnlab demo --epochs 1`, the command it is running."""

from __future__ import annotations

import pytest

import cnnlab.cli.demo as demo
import cnnlab.train.config as config
from cnnlab.cli import main
from cnnlab.errors import ConfigError


class Stop(ConfigError):
    """Raised in place of training: the test needs only what is said before it."""


@pytest.fixture
def no_training(monkeypatch):
    def stop(*args, **kwargs):
        raise Stop("stopped before training")

    monkeypatch.setattr(demo, "run_training", stop)
    monkeypatch.setattr(config, "bf16_supported", lambda device="cpu": False)


@pytest.mark.parametrize(("epochs", "offers_one_epoch"), [("1", False), ("2", True), ("5", True)])
def test_the_note_offers_what_the_demo_is_not_doing(
    capsys, tmp_path, no_training, epochs, offers_one_epoch
):
    assert main(["demo", "--epochs", epochs, "--out", str(tmp_path / "demo")]) == 2
    (note,) = [line for line in capsys.readouterr().err.splitlines() if "fp32" in line]
    assert "`--data digits`" in note
    assert ("--epochs 1" in note) is offers_one_epoch, note
