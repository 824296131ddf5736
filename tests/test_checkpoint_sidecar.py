"""checkpoint.json, the checkpoint's copy for people and tools, is made that copy again by a
resume: a stop between the tensor file's rename and its own (a second Ctrl-C, a kill, a full
disk) left the previous checkpoint's position in it, and a run finished by that resume kept
it for good (epoch 1 beside a checkpoint of epoch 2). Truth: the state inside the tensor
file, read with safetensors."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from cnnlab.train import TrainConfig, checkpoint, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


def _embedded(out) -> dict:
    with safe_open(out / "checkpoint.safetensors", framework="pt") as file:
        return json.loads(file.metadata()["state"])


def test_a_resume_makes_the_sidecar_the_checkpoints_copy_again(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = checkpoint.atomic_write

    def stop_before_the_sidecar(path, data):
        if path.name == "checkpoint.json" and b'"epoch": 2' in data:
            raise KeyboardInterrupt  # the second Ctrl-C, between the two renames
        real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", stop_before_the_sidecar)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_spec(10), "digits", out, CONFIG)
    monkeypatch.undo()
    sidecar = json.loads((out / "checkpoint.json").read_text())
    assert (sidecar["epoch"], _embedded(out)["epoch"]) == (1, 2)  # the torn state
    train(None, None, out, resume=True)
    assert json.loads((out / "checkpoint.json").read_text()) == _embedded(out)
    assert _embedded(out)["epoch"] == 2 and (out / "model.safetensors").is_file()
