"""Weights of another kind of number than the model's are refused naming the tensor:
load_state_dict casts int32 values into float weights without a word (the network then
computes with whole numbers) and the commands answered as if nothing were wrong. Another
float precision (fp16, a model saved in half) still loads: its values fit."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = tiny_spec(10)
CONFIG = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


class Killed(BaseException):
    """Stands for SIGKILL after the first epoch's checkpoint."""


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run killed after its first epoch (a checkpoint, no model.safetensors) and the
    finished one."""
    root = tmp_path_factory.mktemp("runs")

    def killed(row, epochs):
        raise Killed

    with pytest.raises(Killed):
        train(TINY, "digits", root / "stopped", CONFIG, on_epoch=killed)
    train(TINY, "digits", root / "done", CONFIG)
    return root


def _retyped(path, dtype) -> None:
    """Every float tensor of the safetensors file `path` as `dtype`, its metadata kept."""
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata()
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(tensors, path, metadata=metadata)


def test_int_weights_are_refused_and_half_ones_load(stopped, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(stopped / "done", run)
    _retyped(run / "model.safetensors", torch.int32)
    with pytest.raises(RunError, match="0.weight is float32 in the model but int32 in the file"):
        load_run(run)
    shutil.copyfile(stopped / "done" / "model.safetensors", run / "model.safetensors")
    _retyped(run / "model.safetensors", torch.float16)
    assert load_run(run).model[0].weight.dtype == torch.float32


def test_an_int_checkpoint_is_not_resumed(stopped, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(stopped / "stopped", run)
    _retyped(run / "checkpoint.safetensors", torch.int32)
    with pytest.raises(RunError, match="checkpoint.safetensors.*float32 in the model but int32"):
        train(TINY, "digits", run, None, resume=True)


def test_unusable_final_weights_beside_the_last_checkpoint_name_the_resume(stopped, tmp_path):
    """A zero-byte model.safetensors (a disk that lost it) said only 'not readable', though
    the last epoch's checkpoint holds the weights; the resume it names writes them again,
    bitwise (the truth: the file training wrote)."""
    run = tmp_path / "run"
    shutil.copytree(stopped / "done", run)
    (run / "model.safetensors").write_bytes(b"")
    with pytest.raises(RunError, match=f"not a readable.*train --resume --out {run}` writes"):
        load_run(run)
    train(TINY, "digits", run, None, resume=True)
    want = (stopped / "done" / "model.safetensors").read_bytes()
    assert (run / "model.safetensors").read_bytes() == want
