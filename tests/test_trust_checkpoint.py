"""A resume without a checkpoint starts over only when nothing was trained: a finished run
whose checkpoint was deleted (to save space) is not trained again over its weights."""

from __future__ import annotations

import pytest

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = tiny_spec(10)
CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


def test_a_run_whose_checkpoint_was_deleted_is_not_trained_again(tmp_path):
    """It was, from its beginning, over model.safetensors and metrics.jsonl, with the note
    'there was no checkpoint yet'. Truth: the files as training left them."""
    out = tmp_path / "run"
    train(TINY, "digits", out, CONFIG)
    weights, rows = (out / "model.safetensors").read_bytes(), (out / "metrics.jsonl").read_text()
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        (out / name).unlink()
    with pytest.raises(RunError, match=r"missing though the run has trained \(1 epoch in metr"):
        train(TINY, "digits", out, None, resume=True)
    assert (out / "model.safetensors").read_bytes() == weights
    assert (out / "metrics.jsonl").read_text() == rows
