"""A run opened (eval, predict, ...) while it is still training is told so, with the PID of
the training: it was told 'training did not finish; continue it with cnnlab train --resume',
which the lock then refuses. The truth: the PID the lock file holds, which a second writer
is refused with; once the writer is gone, the --resume advice returns."""

from __future__ import annotations

import os

import pytest

from cnnlab.errors import RunError
from cnnlab.train import train
from cnnlab.train.rundir import RunDir, load_run
from tiny_nets import RESUME_CONFIG, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def test_a_run_being_trained_is_told_as_training(tmp_path):
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    (out / "model.safetensors").unlink()  # as mid-training: checkpoints, no weights yet
    writing = RunDir.open(out, resume=True, force=False)  # as `train --resume` holds it
    try:
        with pytest.raises(RunError, match=f"PID {os.getpid()}"):
            RunDir.open(out, resume=True, force=False)  # the truth: the lock's holder
        with pytest.raises(RunError) as opened:
            load_run(out)
        assert str(opened.value) == (
            f"{out} has no model.safetensors: it is still training (cnnlab process "
            f"{os.getpid()}); wait for it to end"
        )
    finally:
        writing.close()
    with pytest.raises(RunError, match=r"training did not finish; continue it with `cnnlab "):
        load_run(out)


def test_a_new_training_into_a_run_being_trained_is_told_of_the_training(tmp_path):
    """Without --resume or --force it was told 'already exists; pass --resume ... or --force',
    both of which the lock then refused: the training in progress is said first."""
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    writing = RunDir.open(out, resume=True, force=False)
    try:
        for resume, force in ((False, False), (True, False), (False, True)):
            with pytest.raises(RunError) as refused:
                RunDir.open(out, resume=resume, force=force)
            assert str(refused.value) == (
                f"{out} is being written by another cnnlab process (PID {os.getpid()}); wait "
                "for it to end, stop it, or choose another --out"
            )
    finally:
        writing.close()
    with pytest.raises(RunError, match="already exists and its training is finished"):
        RunDir.open(out, resume=False, force=False)


def test_a_probe_of_the_lock_at_the_moment_training_starts_does_not_refuse_it(tmp_path):
    """`writer()` (eval, report: is the run being trained?) takes the lock shared for a
    moment; a training that tried its exclusive lock in that moment was refused, naming a
    PID that holds nothing. Truth: flock itself, held shared from another descriptor."""
    import fcntl
    import threading

    from cnnlab.train.run_files import LOCK

    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    (out / "model.safetensors").unlink()
    probe = os.open(out / LOCK, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as writer() holds it
    release = threading.Timer(0.02, fcntl.flock, (probe, fcntl.LOCK_UN))
    release.start()
    try:
        RunDir.open(out, resume=True, force=False).close()
    finally:
        release.join()
        os.close(probe)
