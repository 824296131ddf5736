"""train --resume with options other than the run's names them as the user typed them
(--batch-size), through the CLI's one field -> option mapping (cli._as_option); it named
TrainConfig's fields ('batch_size 64'), which only a Python caller writes, and a Python
caller still reads them. Truth: the options typed, and the advice followed (resume without
them), which trains the run to its end."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after its checkpoints, before its end (no model.safetensors)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_spec(10), "digits", out, CONFIG)
    (out / "model.safetensors").unlink()
    return out


def _resume(out, *options) -> list[str]:
    return ["train", "--resume", "--out", str(out), "--quiet", *options]


def test_the_option_typed_is_named(stopped, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    assert main(_resume(out, "--batch-size", "64")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab train: error: --batch-size 64 (run has 256): cannot resume")
    assert len(err.splitlines()) == 1 and "batch_size" not in err and "without it" in err
    assert main(_resume(out, "--batch-size", "64", "--lr", "0.5")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab train: error: --batch-size 64 (run has 256), and 1 more")
    assert "batch_size" not in err and "without them" in err
    assert main(_resume(out)) == 0  # the advice followed
    assert (out / "model.safetensors").is_file()


def test_python_reads_the_fields(stopped, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    other = TrainConfig(**{**CONFIG.to_dict(), "batch_size": 64, "lr": 0.5})
    with pytest.raises(RunError, match=r"different options: batch_size 64 \(run has 256\), lr"):
        train(None, None, out, other, resume=True)
