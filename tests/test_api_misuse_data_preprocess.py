"""run.preprocess (and cnnlab.data.to_float) with the images a user has at hand: int64
pixels (torch.tensor of a list, NumPy ints) are pixels in 0..255 as uint8 are; they were
standardized without the / 255, so the model saw inputs up to 255/std, and predicted
without an error. Channels-last images are told the permute (they were told to load them at
another size); NumPy arrays and lists are told the conversion (AttributeError: no 'dim')."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import load_dataset, to_float
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run

SPEC = {
    "name": "gap3",
    "input": [3, 12, 12],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gap3"
    train(SPEC, "digits", out, TrainConfig(epochs=1, batch_size=64, precision="fp32"))
    return load_run(out)


@pytest.fixture(scope="module")
def images():
    return load_dataset("digits", "test", channels=3, size=12).images[:6]  # uint8 (6, 3, 12, 12)


def _standardized(images, run):
    """(x / 255 - mean) / std per channel, by torch's broadcasting."""
    mean = torch.tensor(run.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.std).view(1, -1, 1, 1)
    return (images.double() / 255 - mean) / std


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16])
def test_integer_pixels_are_pixels_in_0_255(run, images, dtype):
    got = run.preprocess(images.to(dtype))
    torch.testing.assert_close(got.double(), _standardized(images, run))
    assert torch.equal(to_float(images.to(dtype), run.mean, run.std), run.preprocess(images))


def test_integers_outside_0_255_are_refused(run, images):
    with pytest.raises(DataError, match=r"int64 images are read as pixels in 0..255.*0..1020"):
        run.preprocess(images.long() * 4)


def test_channels_last_is_told_the_permute(run, images):
    nhwc = images.permute(0, 2, 3, 1)
    with pytest.raises(DataError, match=r"channels last \(H, W, C\).*permute\(0, 3, 1, 2\)"):
        run.preprocess(nhwc)
    with pytest.raises(DataError, match=r"image\.permute\(2, 0, 1\)"):
        run.preprocess(nhwc[0])
    fixed = run.preprocess(nhwc.permute(0, 3, 1, 2))
    torch.testing.assert_close(fixed.double(), _standardized(images, run))


@pytest.mark.parametrize(
    ("convert", "fix"),
    [(lambda x: x.numpy(), r"ndarray: pass torch\.from_numpy"), (list, r"list: pass torch\.stack")],
)
def test_arrays_and_lists_are_told_the_conversion(run, images, convert, fix):
    with pytest.raises(DataError, match=fix):
        run.preprocess(convert(images))


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gap1"
    spec = {**SPEC, "name": "gap1", "input": [1, 8, 8]}
    train(spec, "digits", out, TrainConfig(epochs=1, batch_size=64, precision="fp32"))
    return load_run(out)


def test_a_gray_batch_without_its_channel_dim_is_told_unsqueeze(gray_run):
    """(N, H, W) gray images were made a batch of one N-channel image and told to load them
    at another size; told images.unsqueeze(1), which standardizes as torch broadcasting does."""
    images = load_dataset("digits", "test").images[:5]  # (5, 1, 8, 8)
    with pytest.raises(DataError, match=r"\(5, 8, 8\) are a batch of gray images.*unsqueeze\(1\)"):
        gray_run.preprocess(images[:, 0])
    fixed = gray_run.preprocess(images[:, 0].unsqueeze(1))
    torch.testing.assert_close(fixed.double(), _standardized(images, gray_run))
    one = gray_run.preprocess(images[0])  # one (1, 8, 8) image is still a batch of one
    torch.testing.assert_close(one.double(), _standardized(images[:1], gray_run))


def test_a_gray_batch_of_another_size_is_named_as_passed(run):
    """(N, H, W) gray images of another size were named as the (1, N, H, W) made of them;
    the message names the shape passed, and its advice (load at the run's size) is taken."""
    small = load_dataset("digits", "test").images[:5, 0]  # (5, 8, 8)
    told = r"images \(5, 8, 8\) are not.*unsqueeze\(1\).*channels=3, size=\(12, 12\)"
    with pytest.raises(DataError, match=told):
        run.preprocess(small)
    fixed = load_dataset("digits", "test", channels=3, size=(12, 12)).images[:5]
    assert torch.equal(run.preprocess(fixed), to_float(fixed, run.mean, run.std))
