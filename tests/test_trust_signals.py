"""Ctrl-C (or SIGTERM) where the loop does not take a step: in the last epoch's validation,
during the final test evaluation. Each stops the run with the way on (--resume), and the
resumed run ends with the uninterrupted run's weights (the truth)."""

from __future__ import annotations

import os
import signal

import pytest

from cnnlab.train import TrainConfig, TrainingInterrupted, measure, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = tiny_spec(10)
CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    train(TINY, "digits", out, CONFIG)
    return (out / "model.safetensors").read_bytes()


def _interrupt_in(monkeypatch, which: str) -> None:
    """SIGINT during the validation of the epoch (tta off, the first call) or the test
    evaluation with TTA (the last call), as a user's Ctrl-C arrives."""
    original = measure.sharded_eval

    def evaluating(parts, model, images, labels, tta):
        if (which == "test") == tta:
            os.kill(os.getpid(), signal.SIGINT)
        return original(parts, model, images, labels, tta)

    monkeypatch.setattr(measure, "sharded_eval", evaluating)


@pytest.fixture
def foreground_sigint():
    """SIGINT raising KeyboardInterrupt, as in a foreground shell: a suite started in the
    background (`make test &`, nohup) inherits SIGINT ignored, and Python then installs no
    handler, so the signal the test sends would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("which", ["validation", "test"])
@pytest.mark.usefixtures("foreground_sigint")
def test_ctrl_c_after_the_last_step_stops_with_the_way_on(which, reference, tmp_path, monkeypatch):
    """In the last epoch's validation the signal set a flag no later step read: the run went
    on to the end and exit 0. In the test evaluation it was a bare KeyboardInterrupt (the
    CLI's 'interrupted'), though the last epoch's checkpoint was kept."""
    out = tmp_path / "run"
    _interrupt_in(monkeypatch, which)
    with pytest.raises(KeyboardInterrupt) as stopped:  # a bare one must not end the session
        train(TINY, "digits", out, CONFIG)
    monkeypatch.undo()
    assert isinstance(stopped.value, TrainingInterrupted), repr(stopped.value)
    assert "epoch 1" in str(stopped.value) and "--resume" in str(stopped.value)
    assert not (out / "model.safetensors").exists()
    train(TINY, "digits", out, None, resume=True)
    assert (out / "model.safetensors").read_bytes() == reference
