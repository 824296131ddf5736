"""A tensor file in the checkpoint's place that holds no checkpoint state (model.safetensors
copied over it) is told as not a checkpoint; it was told 'checkpoint.json does not describe
checkpoint.safetensors (the run stopped between writing the two files)', a stop cnnlab's
writes cannot leave since the state rides in the tensor file. Truth: the files the test put
there, and a real format-1 pair torn apart still told as torn."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, checkpoint, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


def test_weights_copied_over_the_checkpoint_are_not_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(tiny_spec(10), "digits", out, CONFIG)
    shutil.copy(out / "model.safetensors", out / "checkpoint.safetensors")
    (out / "model.safetensors").unlink()
    with pytest.raises(RunError) as error:
        train(None, None, out, resume=True)
    text = str(error.value)
    assert "holds tensors but no checkpoint state" in text and "--force" in text
    assert "stopped between writing" not in text


def test_a_torn_format_1_pair_is_still_told_as_torn(tmp_path):
    """Format 1 kept the state in checkpoint.json only, tied by the tensors' SHA-256."""
    tensors = {"model.w": torch.ones(3)}
    save_file(tensors, tmp_path / "checkpoint.safetensors")
    blob = (tmp_path / "checkpoint.safetensors").read_bytes()
    state = {"epoch": 1, "step": 0, "tensors_sha256": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "checkpoint.json").write_text(json.dumps(state))
    assert checkpoint.load_checkpoint(tmp_path)[1]["epoch"] == 1
    save_file({"model.w": torch.zeros(3)}, tmp_path / "checkpoint.safetensors")
    with pytest.raises(RunError, match="stopped between writing the two files"):
        checkpoint.load_checkpoint(tmp_path)
