"""`cnnlab train --precision bf16` on a machine without bf16 math says, before training,
that bf16 is emulated there (the `fast` preset on digits, 2 cores: 31 img/s against fp32's
374) and that --precision auto trains in fp32; it said nothing while each epoch took 12×
as long."""

from __future__ import annotations

import pytest

import cnnlab.cli.train as cli_train
import cnnlab.train.config as config
from cnnlab.cli import main
from cnnlab.errors import ConfigError


def stop(*args, **kwargs):
    raise ConfigError("stopped before training")  # only what is said before it matters


@pytest.mark.parametrize(
    ("precision", "native", "said"),
    [("bf16", False, True), ("bf16", True, False), ("auto", False, False), ("fp32", False, False)],
)
def test_emulated_bf16_is_named_before_training(
    monkeypatch, capsys, tmp_path, precision, native, said
):
    monkeypatch.setattr(config, "bf16_supported", lambda device="cpu": native)
    monkeypatch.setattr(cli_train, "run_training", stop)
    argv = ["train", "--preset", "fast", "--data", "digits", "--precision", precision]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert ("emulated" in err and "--precision auto trains in fp32" in err) is said, err
