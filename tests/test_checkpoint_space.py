"""A write that fails on a full disk says how much space it needs, so 'free some space' can
be acted on: a checkpoint of the `fast` preset needs 3.5 MB beside the one it replaces, and a
6 MB disk holding one checkpoint failed the next with no size given. Truth: the size of the
same file written where there is room, and the rounding written out by hand."""

from __future__ import annotations

import errno
import re

import pytest
import torch

from cnnlab.errors import RunError
from cnnlab.train import checkpoint


@pytest.mark.parametrize(
    ("n", "text"),
    [(3_496_216, "3.5 MB"), (1_000_000, "1.0 MB"), (1_000_001, "1.1 MB"), (977, "1 kB"),
     (22_688, "23 kB"), (999_999, "1000 kB")],
)  # fmt: skip
def test_sizes_round_up(n, text):
    assert checkpoint.size_text(n) == text


def test_a_full_disk_names_the_space_the_checkpoint_needs(tmp_path, monkeypatch):
    tensors = {"model.w": torch.randn(300, 1000), "optimizer.0.momentum_buffer": torch.ones(7)}
    state = {"epoch": 1, "step": 0}
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    checkpoint.save_checkpoint(roomy, tensors, state)
    size = (roomy / checkpoint.CHECKPOINT_TENSORS).stat().st_size

    def full(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_all", full)
    with pytest.raises(RunError) as error:
        checkpoint.save_checkpoint(tmp_path, tensors, state)
    needed = re.search(r"the write needs ([\d.]+) MB free", str(error.value))
    assert needed, str(error.value)
    assert size <= float(needed.group(1)) * 1e6 < size + 100_000
    assert "checkpoint.safetensors" in str(error.value)


def test_other_failures_name_no_size(tmp_path, monkeypatch):
    """Space is not what a read-only disk lacks."""

    def read_only(file, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(checkpoint, "_write_all", read_only)
    with pytest.raises(RunError) as error:
        checkpoint.write_json(tmp_path / "a.json", {"a": 1})
    assert "needs" not in str(error.value)
