"""A run's data read again (`evaluate`, `Run.dataset`) is the data it was trained on, or
refused: a class folder renamed or added in a DIR/train + DIR/test folder, and images given
in Python as an ImageSet, which no command can read again. Such images are evaluated by
passing them: `evaluate(run, ImageSet)`, checked against sklearn's accuracy_score.

Before: a class renamed so it sorts first swapped the labels (accuracy 100 % -> 0 %, no
error); a class added failed in the confusion matrix (RuntimeError: shape '[2, 2]'); a run
trained on an ImageSet whose source text names no data set was told 'unknown data set ...:
use one of fashion-mnist, ...', and could not be evaluated on its own images. (A source text
that names a data set, a subset called "fashion-mnist", reopens as that set: tests use it.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix
from torch import nn

from cnnlab.data import ImageSet, conform, load_dataset, to_float
from cnnlab.errors import DataError, RunError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import evaluate

CONFIG = TrainConfig(epochs=3, batch_size=8, precision="fp32", bn_recalibrate=0)


def net(k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, k),
    )  # fmt: skip


def _folder(root, classes=("a", "b")):
    """DIR/train and DIR/test of dark (a) and bright (b) 8×8 images: easy to tell apart."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for i, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = rng.integers(0, 60, (8, 8)) + 180 * i
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = _folder(tmp_path_factory.mktemp("data") / "data")
    out = tmp_path_factory.mktemp("runs") / "run"
    train(net(2), root, out, CONFIG)
    return root, out


def test_a_renamed_class_folder_is_refused_not_swapped(folder_run):
    root, out = folder_run
    assert evaluate(load_run(out, model=net(2))).accuracy == 1.0
    for split in ("train", "test"):  # "b" renamed "0b": it now sorts first, label 0
        (root / split / "b").rename(root / split / "0b")
    try:
        with pytest.raises(RunError, match=r"now holds the classes 0b, a; the run was trained"):
            evaluate(load_run(out, model=net(2)))
    finally:
        for split in ("train", "test"):
            (root / split / "0b").rename(root / split / "b")


def test_an_added_class_folder_is_refused(folder_run):
    root, out = folder_run
    added = root / "test" / "c"
    added.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(added / "0.png")
    (root / "train" / "c").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / "c" / "0.png")
    with pytest.raises(RunError, match="now holds the classes a, b, c"):
        evaluate(load_run(out, model=net(2)))


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    """A run trained on the user's own arrays (digits inverted), named by their source."""
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    mine = ImageSet(255 - tr.images, tr.labels, tr.classes, "inverted digits")
    test = ImageSet(255 - te.images, te.labels, te.classes, "inverted digits")
    out = tmp_path_factory.mktemp("runs") / "mine"
    config = TrainConfig(epochs=1, batch_size=64, precision="fp32", tta=False)
    result = train(net(10), (mine, test), out, config)
    return out, test, result


def test_images_given_in_python_are_not_read_again_by_their_source(memory_run):
    out, _, _ = memory_run
    run = load_run(out, model=net(10))
    with pytest.raises(RunError, match=r"images given in Python.*evaluate\(run, ImageSet"):
        evaluate(run)
    with pytest.raises(RunError, match=r"images given in Python.*resume=True"):
        train(net(10), None, out, resume=True)


def test_evaluate_takes_an_imageset_and_counts_as_sklearn(memory_run):
    out, test, result = memory_run
    run = load_run(out, model=net(10))
    got = evaluate(run, test)
    with torch.no_grad():
        predicted = run.model(to_float(test.images, run.mean, run.std)).argmax(1)
    assert got.accuracy == pytest.approx(accuracy_score(test.labels, predicted))
    assert got.accuracy == pytest.approx(result["test_acc"])
    assert np.array_equal(np.array(got.confusion), confusion_matrix(test.labels, predicted))
    assert got.n == len(test) and got.split == "inverted digits"


def test_evaluate_refuses_an_imageset_that_does_not_fit(memory_run):
    out, test, _ = memory_run
    run = load_run(out, model=net(10))
    reordered = ImageSet(test.images, test.labels, tuple(reversed(test.classes)), "mine")
    with pytest.raises(DataError, match="are not the run's"):
        evaluate(run, reordered)
    with pytest.raises(DataError, match=r"1×12×12.*conform\(images, channels=1, size=\(8, 8\)\)"):
        evaluate(run, conform(test, size=12))
    with pytest.raises(DataError, match=r"'train', 'test' or an ImageSet, got tuple"):
        evaluate(run, (test.images, test.labels))
