"""train(model, (train, test), ...) with a test set that does not fit the training set is
refused before a step, naming the fix; a list pair is the tuple pair.

A test set whose classes were another order was scored on the training set's indices (test
accuracy 8.6 % for a model that was at 12 %); 12×12 test images beside 8×8 training images ran
through a pooling model at chance; both without an error. (images, labels) tensors raised
AttributeError, an empty test set ZeroDivisionError after the training."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from cnnlab.data import ImageSet, conform, load_dataset, normalization_stats, to_float
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, train

CONFIG = TrainConfig(epochs=1, batch_size=64, precision="fp32", bn_recalibrate=0)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def _refused(data, match):
    model = net()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(DataError, match=match):
        train(model, data, None, CONFIG)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_test_set_of_other_classes_is_refused(digits):
    tr, te = digits
    reordered = ImageSet(te.images, te.labels, tuple(reversed(tr.classes)), "my test")
    _refused((tr, reordered), r"my test: the test set's classes \(9, 8, .*one classes list")


def test_a_test_set_of_other_shape_is_refused_with_conform(digits):
    tr, te = digits
    bigger = conform(te, size=12)
    _refused((tr, bigger), r"1×12×12.*1×8×8.*conform\(test, channels=1, size=\(8, 8\)\)")
    _refused((tr, conform(te, channels=3)), r"3×8×8.*conform\(test, channels=1")


def test_tensors_and_empty_sets_are_refused_by_name(digits):
    tr, te = digits
    _refused((tr.images, tr.labels), r"\(Tensor, Tensor\).*ImageSet\(images, labels, classes")
    _refused((tr, te.subset(te.labels < 0)), r"test set has no images; pass \(train, None\)")
    _refused((tr.subset(tr.labels < 0), te), "the training set has no images")
    _refused(tr.subset(tr.labels < 0), "the training set has no images")


def test_a_list_pair_trains_as_the_tuple_and_scores_as_sklearn(digits):
    tr, te = digits
    config = dataclasses.replace(CONFIG, val_fraction=0.0)
    got = train(net(), [tr, te], None, config)
    assert got["test_acc"] == train(net(), (tr, te), None, config)["test_acc"]
    # the accuracy reported is the model's on the test set given, as sklearn counts it
    with torch.no_grad():
        predicted = got["model"](to_float(te.images, *normalization_stats(tr))).argmax(1)
    assert got["test_acc"] == pytest.approx(accuracy_score(te.labels, predicted))
