"""A checkpoint copied in from another run (another model, another number of classes) is
told as another run's, not as an edit the user never made; a real edit is still told as one.
Truth: the files as they were written, and which of them the test changed."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CONFIG = TrainConfig(epochs=2, batch_size=128, flip=False, tta=False, precision="fp32")


def _spec(filters: int, classes: int) -> dict:
    return {
        "name": f"tiny{filters}",
        "input": [1, 8, 8],
        "layers": [{"conv": {"filters": filters, "kernel": 3}}, "relu", "gap", {"linear": classes}],
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs stopped after their checkpoints (no model.safetensors): 4 and 6 filters."""
    made = {}
    for filters in (4, 6):
        out = tmp_path_factory.mktemp("runs") / f"f{filters}"
        train(_spec(filters, 10), "digits", out, CONFIG)
        (out / "model.safetensors").unlink()
        made[filters] = out
    return made


def _with_checkpoint_of(runs, tmp_path, other: int):
    out = tmp_path / "run"
    shutil.copytree(runs[4], out)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copy(runs[other] / name, out / name)
    return out


def test_another_models_checkpoint_is_named_as_another_runs(runs, tmp_path, capsys):
    out = _with_checkpoint_of(runs, tmp_path, 6)
    with pytest.raises(RunError) as error:
        train(None, None, out, resume=True)
    text = str(error.value)
    assert "another run's checkpoint" in text and "--force" in text
    assert "was edited since" not in text  # neither file was touched
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another run's checkpoint" in err


def test_an_edited_spec_is_still_told_as_an_edit(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs[4], out)
    spec = out / "spec.yaml"
    spec.write_text(spec.read_text().replace("relu", "gelu"))
    with pytest.raises(RunError, match="spec.yaml was edited since checkpoint.safetensors"):
        train(None, None, out, resume=True)


def test_the_runs_own_checkpoint_put_back_resumes(runs, tmp_path):
    """The advice works: with its own checkpoint back, the run resumes and finishes."""
    out = _with_checkpoint_of(runs, tmp_path, 6)
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copy(runs[4] / name, out / name)
    result = train(None, None, out, resume=True)
    assert result["epochs"] == 2 and (out / "model.safetensors").is_file()
