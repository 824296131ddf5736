"""A write of a run that fails is told the fix its errno calls for: a full disk more space,
a read-only mount or a directory it may no longer write to permission (freeing space would
not help), and either way --resume continues from the whole checkpoint on disk to the
uninterrupted run's weights (the truth: that run)."""

from __future__ import annotations

import errno
import os

import pytest

from cnnlab.errors import RunError
from cnnlab.train import checkpoint, train
from tiny_nets import RESUME_CONFIG, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def _failing_checkpoint_write(monkeypatch, number: int, at: int) -> None:
    """The `at`-th write of checkpoint.safetensors fails with OSError(`number`), as the
    kernel's write(2) fails on a full disk (ENOSPC) or a mount turned read-only (EROFS)."""
    original = checkpoint._write_all
    count = {"n": 0}

    def failing(file, data):
        if ".checkpoint.safetensors.tmp" in os.path.basename(file.name):
            count["n"] += 1
            if count["n"] == at:
                raise OSError(number, os.strerror(number))
        original(file, data)

    monkeypatch.setattr(checkpoint, "_write_all", failing)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG, checkpoint_seconds=3600)
    return out


@pytest.mark.parametrize(
    ("number", "fix"),
    [
        (errno.EROFS, "make {out} writable again"),
        (errno.EACCES, "make {out} writable again"),
        (errno.ENOSPC, "free some space"),
        (errno.EIO, "fix what stopped the write to {out}"),
    ],
)
def test_a_failed_checkpoint_write_says_its_fix_and_resumes(
    reference, tmp_path, monkeypatch, number, fix
):
    out = tmp_path / "run"
    _failing_checkpoint_write(monkeypatch, number, at=2)  # the end of epoch 2
    with pytest.raises(RunError) as failed:
        train(tiny_spec(), "digits", out, RESUME_CONFIG, checkpoint_seconds=3600)
    monkeypatch.undo()
    message = str(failed.value)
    assert os.strerror(number) in message
    assert f"previous checkpoint (epoch 1, step 0) is whole on disk: {fix.format(out=out)}" in (
        message
    )
    if number != errno.ENOSPC:
        assert "space" not in message  # space is not what this write lacked
    train(tiny_spec(), "digits", out, None, resume=True, checkpoint_seconds=3600)
    want = (reference / "model.safetensors").read_bytes()
    assert (out / "model.safetensors").read_bytes() == want


def test_a_failed_first_checkpoint_on_a_read_only_mount_says_writable(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _failing_checkpoint_write(monkeypatch, errno.EROFS, at=1)
    with pytest.raises(RunError) as failed:
        train(tiny_spec(), "digits", out, RESUME_CONFIG, checkpoint_seconds=3600)
    assert str(failed.value).endswith(
        f"no checkpoint was saved yet: make {out} writable again (its permissions, or a "
        "read-only mount) and start again with --force"
    )


def test_a_checkpoint_within_an_epoch_is_named_in_the_epoch_lines_terms(
    reference, tmp_path, monkeypatch
):
    """checkpoint.json's (epoch 0, step 3) is 3 steps into epoch 1, as 'interrupted at epoch
    1, step 3' says: 'the previous checkpoint (epoch 0, step 3)' alone read as another place."""
    out = tmp_path / "run"
    _failing_checkpoint_write(monkeypatch, errno.ENOSPC, at=4)  # one per step: after step 3
    with pytest.raises(RunError) as failed:
        train(tiny_spec(), "digits", out, RESUME_CONFIG, checkpoint_seconds=0)
    monkeypatch.undo()
    assert checkpoint.saved_position(out) == (0, 3)  # the truth: what the disk holds
    assert "the previous checkpoint (epoch 0, step 3: 3 steps into epoch 1) is whole" in str(
        failed.value
    )
    train(tiny_spec(), "digits", out, None, resume=True, checkpoint_seconds=3600)
    want = (reference / "model.safetensors").read_bytes()
    assert (out / "model.safetensors").read_bytes() == want
