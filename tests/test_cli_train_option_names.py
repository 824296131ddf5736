"""`cnnlab train` names the option the user typed when it refuses a value (docs/reliability.md:
each message names the option): `--weight-decay inf` was told "weight_decay must be a finite
number", a name the user never typed. A Python caller, who writes the field
(TrainConfig(**options)), is still told the field. Truth: the option strings argparse
registers for the fields, and the field names of the dataclass."""

from __future__ import annotations

import dataclasses

import pytest

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig

# a refused value of every numeric field, as typed on the command line
CASES = [
    ("epochs", "0"),
    ("batch_size", "0"),
    ("eval_batch_size", "0"),
    ("lr", "nan"),
    ("lr", "0"),
    ("momentum", "2"),
    ("weight_decay", "inf"),
    ("weight_decay", "-1"),
    ("warmup", "1"),
    ("label_smoothing", "1"),
    ("translate", "-1"),
    ("tta_shift", "-1"),
    ("erase", "2"),
    ("ema", "1.5"),
    ("ema", "inf"),
    ("bn_recalibrate", "1"),
    ("bn_recalibrate", "-1"),
    ("val_fraction", "1"),
    ("seed", "-1"),
    ("diagnose_every", "-1"),
]


def test_cases_cover_every_numeric_field():
    numeric = {
        f.name for f in dataclasses.fields(TrainConfig) if f.type.startswith(("int", "float"))
    }
    assert {name for name, _ in CASES} == numeric


def _refused(capsys, tmp_path, *options: str) -> str:
    """The one error line of `cnnlab train --preset fast OPTIONS`, which exits 2."""
    out = tmp_path / "run"
    assert main(["train", "--preset", "fast", "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before anything was written
    return err


@pytest.mark.parametrize("field, value", CASES)
def test_cli_names_the_option(capsys, tmp_path, field, value):
    flag = "--" + field.replace("_", "-")
    err = _refused(capsys, tmp_path, f"{flag}={value}")
    assert err.startswith(f"cnnlab train: error: {flag} "), err
    assert field not in err.replace(flag, ""), err  # the field is not named beside it


def test_cli_names_checkpoint_seconds(capsys, tmp_path):
    for value in ("nan", "-1"):
        err = _refused(capsys, tmp_path, f"--checkpoint-seconds={value}")
        assert err.startswith("cnnlab train: error: --checkpoint-seconds must be "), err


@pytest.mark.parametrize("field, value", CASES)
def test_python_names_the_field(field, value):
    kind = next(f.type for f in dataclasses.fields(TrainConfig) if f.name == field)
    number = float(value) if kind.startswith("float") else int(value)
    with pytest.raises(ConfigError) as error:
        TrainConfig(**{field: number})
    assert str(error.value).startswith(f"{field} "), error.value
    assert "--" not in str(error.value)


def test_demo_names_the_option(capsys, tmp_path):
    """`cnnlab demo --epochs` feeds TrainConfig too: told as the option, not the field."""
    assert main(["demo", "--epochs", "0", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err == "cnnlab demo: error: --epochs must be at least 1, got 0\n", err
