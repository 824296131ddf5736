"""An epoch's `seconds` (and so its `img_per_s`) is the time of its steps, as Sums.seconds
says: the checkpoints written within the epoch (every --checkpoint-seconds) are not in it,
as the checkpoint at the epoch's end and the validation are not. The truth: the steps' own
durations, timed around each one, and the time the writes took."""

from __future__ import annotations

import json
import time

import pytest

from cnnlab.train import loop as loop_module
from cnnlab.train import train
from cnnlab.train.rundir import RunDir
from tiny_nets import RESUME_CONFIG, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

WRITE = 0.1  # seconds each checkpoint write is made to take, as a large model's does


def test_checkpoint_writes_within_an_epoch_are_not_its_seconds(tmp_path, monkeypatch):
    steps, writes = [], []
    step, save = loop_module._step, RunDir.save_checkpoint

    def timed_step(*args):
        start = time.perf_counter()
        try:
            return step(*args)
        finally:
            steps.append(time.perf_counter() - start)

    def slow_save(self, *args):
        start = time.perf_counter()
        time.sleep(WRITE)
        save(self, *args)
        writes.append(time.perf_counter() - start)

    monkeypatch.setattr(loop_module, "_step", timed_step)
    monkeypatch.setattr(RunDir, "save_checkpoint", slow_save)
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG, checkpoint_seconds=0)  # one per step
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(row["seconds"] for row in rows)
    assert len(writes) > 10  # a write after every step
    assert seconds >= sum(steps) - 0.01  # the steps are in it (rounded to ms per row)
    # the batches' augmentation is in it too, but far from the writes' time
    assert seconds < sum(steps) + sum(writes) / 4, (seconds, sum(steps), sum(writes))
