"""A full disk at each kind of write of a training run: the message says what is on disk
and the one way on, and that way works. The truth is the disk: the checkpoint's tensor file
is its commit, so a failure on a file written after it leaves the new checkpoint."""

from __future__ import annotations

import errno
import os

import pytest

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, checkpoint, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = tiny_spec(10)
CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


def _full_on(monkeypatch, name: str, nth: int = 1) -> None:
    """The `nth` write of the file `name` fails as a full disk does (ENOSPC)."""
    original, writes = checkpoint._write_all, []

    def write(file, data):
        if os.path.basename(file.name).startswith(f".{name}.tmp-"):
            writes.append(name)
            if len(writes) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(file, data)

    monkeypatch.setattr(checkpoint, "_write_all", write)


# metrics.jsonl's first write is the new run's empty file, its second the epoch's rows
@pytest.mark.parametrize(
    "name, nth", [("checkpoint.json", 1), ("metrics.jsonl", 2), ("model.safetensors", 1)]
)
def test_a_write_after_the_checkpoint_commit_advises_resume_and_resume_ends_the_run(
    name, nth, tmp_path, monkeypatch
):
    """The first epoch's checkpoint committed, then the disk filled: it said 'no checkpoint
    was saved yet: ... start again with --force' (the whole training thrown away), or for the
    final weights nothing at all about how to go on."""
    out = tmp_path / "run"
    _full_on(monkeypatch, name, nth)
    with pytest.raises(RunError) as failed:
        train(TINY, "digits", out, CONFIG)
    monkeypatch.undo()
    message = str(failed.value)
    assert "(epoch 1, step 0) is whole on disk" in message and "--resume" in message, message
    assert "--force" not in message, message
    result = train(TINY, "digits", out, None, resume=True)
    assert result["epochs"] == 1 and (out / "model.safetensors").is_file()


def test_a_first_write_that_fails_claims_no_previous_version(tmp_path, monkeypatch):
    """config.json of a new run: there was no previous version to be 'intact'."""
    _full_on(monkeypatch, "config.json")
    with pytest.raises(RunError) as failed:
        train(TINY, "digits", tmp_path / "run", CONFIG)
    message = str(failed.value)
    assert "previous version" not in message and "run it again" in message, message


def test_a_failed_checkpoint_says_its_way_on_once(tmp_path, monkeypatch):
    """The second epoch's checkpoint tensors fail: the first's is whole, said once."""
    _full_on(monkeypatch, "checkpoint.safetensors", 2)
    config = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)
    with pytest.raises(RunError) as failed:
        train(TINY, "digits", tmp_path / "run", config)
    message = str(failed.value)
    assert message.count("the previous checkpoint (epoch 1, step 0) is whole") == 1, message
