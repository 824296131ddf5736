"""A run you can trust under faults: a kill or a full disk at every point where a training
run writes a file, each resumed to bitwise the weights AND the metrics of an uninterrupted
run (the truth: that run); checkpoints within the first epoch; temp files of kills cleaned."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, TrainingInterrupted, checkpoint, train
from cnnlab.train import loop as loop_module

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"dropout": 0.1},  # consumes the global torch RNG: resume must restore it
        "gap",
        {"linear": 10},
    ],
}
CONFIG = TrainConfig(epochs=2, batch_size=128, flip=False, tta=False, precision="fp32", erase=0.3)
TIMELESS = ("seconds", "img_per_s", "wall")  # the only fields that may differ: clocks


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way may catch it."""


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def _rows(out) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMELESS} for x in lines]


def _weights(out) -> dict[str, torch.Tensor]:
    return checkpoint.load_weights(out / "model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The truth: the same run, uninterrupted; and how many atomic writes it makes."""
    out = tmp_path_factory.mktemp("ref") / "run"
    calls = []
    original = checkpoint.atomic_write

    def counting(path, data):
        calls.append(os.path.basename(path))
        original(path, data)

    checkpoint.atomic_write = counting
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every test here: thread count changes the arithmetic
    try:
        train(TINY, "digits", out, CONFIG, checkpoint_seconds=3600)
    finally:
        checkpoint.atomic_write = original
        torch.set_num_threads(threads)
    return out, calls


def _inject(monkeypatch, at: int, mode: str) -> None:
    """Make the `at`-th atomic write fail as `mode`: killed before its rename (the temp file
    is left behind, as a SIGKILL leaves it), killed just after it, or a full disk."""
    original = checkpoint.atomic_write
    count = {"n": 0}

    def faulty(path, data):
        count["n"] += 1
        if count["n"] != at:
            return original(path, data)
        if mode == "kill-before":
            (path.parent / f".{path.name}.tmp-99999").write_bytes(data[: len(data) // 2])
            raise Killed
        if mode == "disk-full":
            raise RunError(f"could not write {path}: {os.strerror(errno.ENOSPC)}")
        original(path, data)
        raise Killed

    monkeypatch.setattr(checkpoint, "atomic_write", faulty)


def test_a_fault_at_every_write_resumes_to_the_same_weights_and_metrics(
    reference, tmp_path, monkeypatch
):
    ref, writes = reference
    assert len(writes) >= 9, writes  # spec, config, metrics; per epoch 3; weights, metrics
    for at in range(1, len(writes) + 1):
        for mode in ("kill-before", "kill-after", "disk-full"):
            out = tmp_path / f"{at}-{mode}"
            _inject(monkeypatch, at, mode)
            with pytest.raises((Killed, RunError)):
                train(TINY, "digits", out, CONFIG, checkpoint_seconds=3600)
            monkeypatch.undo()
            case = f"fault {mode} at write {at} ({writes[at - 1]})"
            if not (out / "config.json").is_file():  # nothing to resume: start again
                with pytest.raises(RunError, match="nothing to resume.*--force|no such dir"):
                    train(TINY, "digits", out, None, resume=True)
                train(TINY, "digits", out, CONFIG, checkpoint_seconds=3600)  # no --force needed
            else:
                train(TINY, "digits", out, None, resume=True, checkpoint_seconds=3600)
            assert not list(out.glob(".*.tmp-*")), case
            assert _rows(out) == _rows(ref), case
            got, want = _weights(out), _weights(ref)
            assert all(torch.equal(got[k], want[k]) for k in want), case
            assert (out / "model.safetensors").read_bytes() == (
                ref / "model.safetensors"
            ).read_bytes(), case


def test_a_kill_in_the_first_epoch_leaves_a_checkpoint(reference, tmp_path, monkeypatch):
    """checkpoint_seconds=0: a checkpoint after every step, so a kill at step 3 of epoch 1
    resumes from step 3 (not from nothing) and ends as the uninterrupted run."""
    ref, _ = reference
    out = tmp_path / "run"
    original = loop_module._step
    steps = {"n": 0}

    def killed_at_4(parts, position, *args):
        steps["n"] += 1
        if steps["n"] == 4:
            raise Killed
        return original(parts, position, *args)

    monkeypatch.setattr(loop_module, "_step", killed_at_4)
    with pytest.raises(Killed):
        train(TINY, "digits", out, CONFIG, checkpoint_seconds=0)
    monkeypatch.undo()
    _, state = checkpoint.load_checkpoint(out)
    assert (state["epoch"], state["step"]) == (0, 3)
    train(TINY, "digits", out, None, resume=True)
    assert _rows(out) == _rows(ref)
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()


def test_sigterm_is_treated_as_ctrl_c(reference, tmp_path, monkeypatch):
    """SIGTERM mid-epoch: a checkpoint and a message saying how to resume, then the resumed
    run ends as the uninterrupted one."""
    ref, _ = reference
    out = tmp_path / "run"
    original = loop_module._step
    steps = {"n": 0}

    def term_at_6(parts, position, *args):
        steps["n"] += 1
        if steps["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(parts, position, *args)

    monkeypatch.setattr(loop_module, "_step", term_at_6)
    with pytest.raises(TrainingInterrupted, match="step 6.*--resume"):
        train(TINY, "digits", out, CONFIG, checkpoint_seconds=3600)
    monkeypatch.undo()
    train(TINY, "digits", out, None, resume=True)
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()


def test_a_failed_first_checkpoint_does_not_advise_resume(tmp_path, monkeypatch):
    original = checkpoint.save_checkpoint

    def full(directory, tensors, state):
        raise RunError(f"could not write {directory}/checkpoint.safetensors: disk full")

    monkeypatch.setattr(checkpoint, "save_checkpoint", full)
    with pytest.raises(RunError) as failed:
        train(TINY, "digits", tmp_path / "run", CONFIG)
    assert "--resume" not in str(failed.value) and "--force" in str(failed.value)
    calls = {"n": 0}

    def full_second_time(directory, tensors, state):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RunError("could not write: disk full")
        original(directory, tensors, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", full_second_time)
    with pytest.raises(RunError, match=r"previous checkpoint \(epoch 1, step 0\).*--resume"):
        train(TINY, "digits", tmp_path / "run2", CONFIG)
