"""Checkpoints: atomic writes, exact round trips of tensors, optimizer and RNG states."""

from __future__ import annotations

import errno
import hashlib
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from cnnlab.errors import RunError
from cnnlab.train import checkpoint


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"model.w": torch.randn(4, 3, generator=g), "model.n": torch.tensor(seed)}


def test_checkpoint_round_trip_is_exact(tmp_path):
    tensors = _tensors(1)
    checkpoint.save_checkpoint(tmp_path, tensors, {"epoch": 3, "step": 0})
    loaded, state = checkpoint.load_checkpoint(tmp_path)
    assert state["epoch"] == 3 and state["step"] == 0
    assert loaded.keys() == tensors.keys()
    for k in tensors:
        assert torch.equal(loaded[k], tensors[k])
    # the files are what they claim: JSON, and safetensors readable without torch.load
    json.loads((tmp_path / "checkpoint.json").read_text())
    with safe_open(tmp_path / "checkpoint.safetensors", framework="pt") as f:
        assert set(f.keys()) == set(tensors)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """A disk filling half-way through a write (ENOSPC) leaves the old pair loadable."""
    old = _tensors(1)
    checkpoint.save_checkpoint(tmp_path, old, {"epoch": 1})

    def half_then_full(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_all", half_then_full)
    with pytest.raises(RunError, match="No space left on device.*intact"):
        checkpoint.save_checkpoint(tmp_path, _tensors(2), {"epoch": 2})
    monkeypatch.undo()

    loaded, state = checkpoint.load_checkpoint(tmp_path)
    assert state["epoch"] == 1
    assert torch.equal(loaded["model.w"], old["model.w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "checkpoint.safetensors",
    ]  # no temp file left behind


def test_failure_on_the_sidecar_keeps_a_whole_checkpoint(tmp_path, monkeypatch):
    """Tensors replaced, then the JSON sidecar's write fails (disk full, or killed between
    the two renames): the new checkpoint is whole, its state read from the tensor file."""
    checkpoint.save_checkpoint(tmp_path, _tensors(1), {"epoch": 1})
    real = checkpoint.atomic_write

    def fail_on_json(path, data):
        if path.name == "checkpoint.json":
            raise RunError("simulated crash")
        real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", fail_on_json)
    with pytest.raises(RunError, match="simulated"):
        checkpoint.save_checkpoint(tmp_path, _tensors(2), {"epoch": 2})
    monkeypatch.undo()
    loaded, state = checkpoint.load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and torch.equal(loaded["model.w"], _tensors(2)["model.w"])
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 1  # stale copy


DISK_FULL = """
import resource, sys, torch
from cnnlab.train import checkpoint
from cnnlab.errors import RunError
out, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # files past `limit` bytes: EFBIG
try:
    checkpoint.save_checkpoint(out, {"model.w": torch.full((limit,), 2.0)}, {"epoch": 2})
except RunError as error:
    print(error)
"""


def test_a_real_full_disk_leaves_the_previous_checkpoint(tmp_path):
    """A process whose file-size limit (RLIMIT_FSIZE) makes the write fail as a full disk
    does (the tensor file, which embeds the state, is always the larger of the two)."""
    checkpoint.save_checkpoint(tmp_path, {"model.w": torch.ones(500)}, {"epoch": 1})
    out = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path), "1000"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "could not write" in out.stdout and "intact" in out.stdout
    loaded, state = checkpoint.load_checkpoint(tmp_path)
    assert state["epoch"] == 1 and torch.equal(loaded["model.w"], torch.ones(500))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "checkpoint.safetensors",
    ]  # no temp file left behind


def test_a_format_1_pair_still_loads_and_a_torn_one_is_refused(tmp_path):
    """Checkpoints written before the state moved into the tensor file (format 1)."""
    from safetensors.torch import save as st_save

    blob = st_save(_tensors(1), metadata={"format": "1"})
    (tmp_path / "checkpoint.safetensors").write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    (tmp_path / "checkpoint.json").write_text(json.dumps({"epoch": 1, "tensors_sha256": digest}))
    assert checkpoint.load_checkpoint(tmp_path)[1]["epoch"] == 1
    (tmp_path / "checkpoint.json").write_text(json.dumps({"epoch": 1, "tensors_sha256": "0"}))
    with pytest.raises(RunError, match="does not describe"):
        checkpoint.load_checkpoint(tmp_path)


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(RunError, match="checkpoint.safetensors is missing"):
        checkpoint.load_checkpoint(tmp_path)


def test_rng_state_round_trip_through_json():
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    state = json.loads(json.dumps(checkpoint.rng_state()))
    expected = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    checkpoint.set_rng_state(state)
    got = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05),
    ],
)
def test_optimizer_state_round_trip_continues_identically(make, tmp_path):
    """Truth: the optimizer that never left memory. Two more steps from the restored state
    give bitwise the same weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))

    def step(m, opt):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()

    opt = make(model.parameters())
    for _ in range(3):
        step(model, opt)
    tensors, rest = checkpoint.split_optimizer_state(opt.state_dict())
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    checkpoint.save_checkpoint(tmp_path, tensors, {"optimizer": rest})

    loaded, state = checkpoint.load_checkpoint(tmp_path)
    twin = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    twin.load_state_dict(checkpoint.prefixed(loaded, "model"))
    twin_opt = make(twin.parameters())
    twin_opt.load_state_dict(checkpoint.join_optimizer_state(loaded, state["optimizer"]))
    for _ in range(2):
        step(model, opt)
        step(twin, twin_opt)
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_weights_file_round_trip_and_corrupt_file(tmp_path):
    model = nn.Conv2d(2, 3, 3)
    checkpoint.save_weights(tmp_path / "model.safetensors", model.state_dict())
    loaded = checkpoint.load_weights(tmp_path / "model.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RunError, match="bad.safetensors"):
        checkpoint.load_weights(tmp_path / "bad.safetensors")
