"""--resume of a finished run whose checkpoint is gone or unusable says the training is
finished and names the command that reads its weights; it advised '--force', which deletes
the trained weights. Truth: model.safetensors as training wrote it, and the advised
command's exit code."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, checkpoint, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


def _truncate(out):
    path = out / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:1000])


def _nan(out):
    tensors, state = checkpoint.load_checkpoint(out)
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    checkpoint.save_checkpoint(out, tensors, state)


def _delete(out):
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        (out / name).unlink()


@pytest.mark.parametrize("damage", [_truncate, _nan, _delete], ids=["truncated", "NaN", "gone"])
def test_a_finished_runs_broken_checkpoint_is_no_reason_for_force(tmp_path, capsys, damage):
    out = tmp_path / "run"
    train(tiny_spec(10), "digits", out, CONFIG)
    weights = (out / "model.safetensors").read_bytes()
    damage(out)
    with pytest.raises(RunError) as error:
        train(None, None, out, resume=True)
    text = str(error.value)
    assert "training is finished" in text and "nothing to resume" in text
    assert "start the run again with --force" not in text
    assert f"cnnlab eval {out}" in text
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["eval", str(out)]) == 0  # the advice, typed back
    assert (out / "model.safetensors").read_bytes() == weights


def test_an_unfinished_runs_broken_checkpoint_still_advises_force(tmp_path):
    """Killed after its checkpoint, before its weights: --force is the way on."""
    out = tmp_path / "run"
    train(tiny_spec(10), "digits", out, CONFIG)
    (out / "model.safetensors").unlink()
    _truncate(out)
    with pytest.raises(RunError, match="start the run again with --force"):
        train(None, None, out, resume=True)
