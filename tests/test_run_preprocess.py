"""Run.preprocess refuses images it would turn into inputs the model never saw without an
error from torch: another (C, H, W) than the run's, float pixels outside [0, 1]."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import load_dataset, to_float
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run

CONV = [{"conv": {"filters": 8, "kernel": 3, "padding": "same"}}, "relu"]
GAP = {"name": "gap-head", "input": [1, 12, 12], "layers": [*CONV, "gap", {"linear": 10}]}
ONE = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, ema=None, precision="fp32")

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gap"
    train(GAP, "digits", out, ONE)
    return load_run(out)


def test_images_of_the_run_s_shape_are_normalized_as_to_float(run):
    """Truth: to_float with the run's own statistics; one (C, H, W) image gets its batch."""
    images = run.dataset("test").images[:5]
    assert torch.equal(run.preprocess(images), to_float(images, run.mean, run.std))
    assert torch.equal(run.preprocess(images[0]), to_float(images[:1], run.mean, run.std))
    floats = images.float() / 255
    assert torch.allclose(run.preprocess(floats), to_float(images, run.mean, run.std))


def test_images_of_another_size_are_refused_though_the_gap_model_runs_them(run):
    """digits as loaded are 8x8; the run was trained at 12x12. Its GAP head runs them."""
    small = load_dataset("digits", "test").images[:5]  # (5, 1, 8, 8)
    run.model(to_float(small, run.mean, run.std))  # no error from torch: the trap
    with pytest.raises(DataError, match=r"\(5, 1, 8, 8\).*\(1, 12, 12\).*size=\(12, 12\)"):
        run.preprocess(small)
    with pytest.raises(DataError, match="input shape"):
        run.preprocess(small.expand(-1, 3, -1, -1))


@pytest.mark.parametrize("scale", [255.0, -1.0])
def test_float_pixels_outside_0_1_are_refused(run, scale):
    """0..255 floats (or already-normalized images) would be scaled a second time."""
    images = run.dataset("test").images[:2].float() / 255 * scale
    with pytest.raises(DataError, match=r"\[0, 1\].*uint8"):
        run.preprocess(images)


def test_bicubic_resized_images_are_taken_though_they_overshoot_0_1(run):
    """F.interpolate(bicubic) of black-and-white digits overshoots [0, 1] at hard edges;
    they are pixels, as the user resized them. Truth: to_float of the same floats."""
    small = load_dataset("digits", "test").images[:4].float() / 255  # (4, 1, 8, 8)
    big = torch.nn.functional.interpolate(small, size=(12, 12), mode="bicubic")
    assert big.min() < 0 or big.max() > 1  # the overshoot this is about
    assert torch.equal(run.preprocess(big), to_float(big, run.mean, run.std))
