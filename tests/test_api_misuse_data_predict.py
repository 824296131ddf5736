"""predict(run, "photo.png") predicts that one file (its characters were read as paths: the
first, "/", was refused as 'a directory, not a regular image file; give the files in it');
top=0 is refused (it gave the top class as if top=1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.data import to_float
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import predict


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_and_image(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    train(net(), "digits", out, TrainConfig(epochs=1, batch_size=64, precision="fp32"))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)
    path = tmp_path_factory.mktemp("images") / "one.png"
    Image.fromarray(pixels).save(path)
    return load_run(out, model=net()), path, pixels


@pytest.mark.parametrize("as_text", [True, False])
def test_one_path_is_one_image(run_and_image, as_text):
    run, path, pixels = run_and_image
    (got,) = predict(run, str(path) if as_text else path, top=3)
    assert got.source == str(path) and got.size == (8, 8)
    with torch.no_grad():  # the run's model on the file's pixels, softmax by torch
        x = to_float(torch.from_numpy(pixels)[None, None], run.mean, run.std)
        p, idx = run.model(x).softmax(1)[0].topk(3)
    assert [name for name, _ in got.top] == [run.classes[i] for i in idx.tolist()]
    assert [q for _, q in got.top] == pytest.approx(p.tolist())


@pytest.mark.parametrize("top", [0, -1, 2.5, True])
def test_top_below_one_or_not_whole_is_refused(run_and_image, top):
    run, path, _ = run_and_image
    with pytest.raises(DataError, match="top must be a whole number of classes, at least 1"):
        predict(run, [path], top=top)


def test_images_in_memory_are_told_preprocess(run_and_image):
    """A PIL image, a tensor or an array (alone or in a list) failed with a TypeError or
    'truth value ... is ambiguous' from inside the file reader."""
    run, path, pixels = run_and_image
    image = Image.fromarray(pixels)
    for given in (image, [image], torch.from_numpy(pixels)[None, None], pixels, [path, pixels]):
        with pytest.raises(DataError, match=r"give a list of paths.*run\.preprocess\(images\)"):
            predict(run, given)
    with torch.no_grad():  # the way named gives the file's own answer
        p = run.model(run.preprocess(torch.from_numpy(pixels)[None, None])).softmax(1)[0]
    (got,) = predict(run, [path], top=1)
    assert got.top[0] == (run.classes[int(p.argmax())], pytest.approx(float(p.max())))
