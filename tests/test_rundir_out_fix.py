"""An --out the OS refuses (a read-only mount, no permission, a file on its path, a full disk)
is one line that names what to do, and the advice works when followed; it named the OS's
reason only ('cannot write --out runs/x: Read-only file system'). The refusals are the OS's
own errors (OSError with its errno), raised where the lock file is opened; truth: the
errno's meaning and the files on disk."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import LOCK, RunDir

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


def _refuse_lock(monkeypatch, number: int) -> None:
    """The lock file's open fails as the OS fails it on such a disk."""
    real = os.open

    def refusing(path, *args, **kwargs):
        if os.fspath(path).endswith(LOCK):
            raise OSError(number, os.strerror(number), os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


@pytest.mark.parametrize(
    ("number", "advice"),
    [
        (errno.EROFS, "choose an --out on a writable disk"),
        (errno.EACCES, "choose an --out on a writable disk"),
        (errno.ENOSPC, "free some space, or choose another --out"),
    ],
    ids=["read-only", "permission", "full"],
)
def test_a_refused_new_out_names_the_fix(tmp_path, monkeypatch, capsys, number, advice):
    _refuse_lock(monkeypatch, number)
    with pytest.raises(RunError, match=f"{os.strerror(number)}; {advice}"):
        RunDir.open(tmp_path / "run", resume=False, force=False)
    argv = ["train", "--preset", "lenet5", "--data", "digits", "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and advice in err


def test_a_read_only_run_to_resume_can_be_resumed_from_a_copy(tmp_path, monkeypatch):
    """The advice for --resume (copy the run to a writable place) followed: the copy resumes
    to the same weights as the run resumed where it is."""
    out = tmp_path / "ro" / "run"
    train(TINY, "digits", out, TrainConfig(**{**QUICK.to_dict(), "epochs": 2}))
    (out / "model.safetensors").unlink()  # killed after its last checkpoint
    with monkeypatch.context() as patched:
        _refuse_lock(patched, errno.EROFS)
        with pytest.raises(RunError, match="copy the run to a writable directory"):
            train(None, None, out, resume=True)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    train(None, None, copy, resume=True)
    train(None, None, out, resume=True)  # the run where it is, once writable
    assert (copy / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_a_file_on_the_path_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RunError, match=r"notes.txt is a file, not a directory: choose another"):
        RunDir.open(tmp_path / "notes.txt" / "a" / "run", resume=False, force=False)


def test_a_start_refused_at_the_lock_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    """A full disk fails writing the PID into the new lock file: the directories the start
    made and the lock file are removed (the lock and `new/` stayed); a directory the user
    made stays, empty."""

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(RunError, match="free some space"):
        RunDir.open(tmp_path / "new" / "run", resume=False, force=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(RunError, match="free some space"):
        RunDir.open(tmp_path / "mine", resume=False, force=False)
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def test_a_full_disk_on_resume_is_not_told_to_choose_another_out(tmp_path, monkeypatch):
    """A run to resume is at its --out: another --out cannot resume it. Its fix is space, and
    a refusal of another kind is told the copy that resumes elsewhere."""
    out = tmp_path / "run"
    train(TINY, "digits", out, TrainConfig(**{**QUICK.to_dict(), "epochs": 1}))
    (out / "model.safetensors").unlink()  # killed after its last checkpoint
    cases = [
        (errno.ENOSPC, "free some space and resume again"),
        (errno.EIO, "copy the run to another directory and resume"),
    ]
    for number, advice in cases:
        with monkeypatch.context() as patched:
            _refuse_lock(patched, number)
            with pytest.raises(RunError, match=advice) as caught:
                train(None, None, out, resume=True)
        assert "choose another --out" not in str(caught.value)
