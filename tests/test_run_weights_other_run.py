"""model.safetensors copied in from another run of the same spec is told as another run's
weights (the run's checkpoint still matches its config.json), with a way to write the run's
own again; it was told 'config.json was edited after training; restore it', an edit never
made. Truth: the run's own weights' bytes, written again by the advised command."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs of one spec: 1 epoch and 2 epochs (another config.json)."""
    made = []
    for epochs in (1, 2):
        out = tmp_path_factory.mktemp("runs") / f"e{epochs}"
        train(tiny_spec(10), "digits", out, TrainConfig(**{**CONFIG.to_dict(), "epochs": epochs}))
        made.append(out)
    return made


def test_another_runs_weights_are_named_and_the_advice_restores_them(runs, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(runs[0], out)
    own = (out / "model.safetensors").read_bytes()
    shutil.copy(runs[1] / "model.safetensors", out / "model.safetensors")
    with pytest.raises(RunError) as error:
        load_run(out)
    text = str(error.value)
    assert "model.safetensors is another run's" in text and "was edited" not in text
    assert main(["eval", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert f"cnnlab train --resume --out {out}" in text
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0  # the advice
    assert (out / "model.safetensors").read_bytes() == own


def test_an_edited_config_is_still_told_as_edited(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs[0], out)
    config = out / "config.json"
    config.write_text(config.read_text().replace('"lr": 0.1', '"lr": 0.2'))
    with pytest.raises(RunError, match="config.json was edited after training"):
        load_run(out)
