"""`cnnlab demo` on a CPU without bf16 math says, before the first epoch, that it trains in
fp32, several times slower than the README's bf16 minutes, and how to take a quicker look:
without it a piped `make demo > log` stayed silent for minutes per epoch."""

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


@pytest.mark.parametrize("bf16", [False, True])
def test_the_fp32_note_comes_before_training_without_bf16(
    monkeypatch, capsys, tmp_path, no_training, bf16
):
    monkeypatch.setattr(config, "bf16_supported", lambda device="cpu": bf16)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert ("fp32" in err and "--epochs 1" in err and "--data digits" in err) is not bf16, err


def test_digits_trains_in_seconds_and_gets_no_note():
    assert demo.precision_note("digits", bf16=False) is None
    assert demo.precision_note("fashion-mnist", bf16=True) is None
    assert "fp32" in demo.precision_note("fashion-mnist", bf16=False)
