"""A run trained on ImageSets reopens its data only when its test split is the one the
data's name reads: training on load_dataset(name, "test") (alone or swapped in a pair) is
noted, and the run refuses to score that split as unseen; a pair whose test set is other
images than the named set's test split is evaluated on what was given, not on the named
set's. Before, evaluate(run) of a run trained on digits' test split scored the very images
it was trained on, and a run given its own test images was re-scored on digits' test."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from cnnlab.data import load_dataset, load_splits, to_float
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import evaluate

CONFIG = TrainConfig(epochs=1, batch_size=64, precision="fp32", tta=False)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def _noted(result):
    return [n for n in result["notes"] if "the test split of digits" in n]


def _in_memory(out) -> bool:
    return bool(json.loads((out / "config.json").read_text()).get("data_in_memory"))


@pytest.mark.parametrize("swapped", [False, True])
def test_training_on_the_test_split_is_noted_and_not_rescored(tmp_path, swapped):
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    result = train(net(), (te, tr) if swapped else te, tmp_path / "run", CONFIG)
    assert _noted(result) and _in_memory(tmp_path / "run")
    with pytest.raises(RunError, match="images given in Python"):
        evaluate(load_run(tmp_path / "run", model=net()))


def test_a_test_set_of_other_images_is_scored_as_given(tmp_path):
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    own = te.subset(te.labels < 5)  # other images than digits' test split
    result = train(net(), (tr, own), tmp_path / "run", CONFIG)
    assert _in_memory(tmp_path / "run") and not _noted(result)
    run = load_run(tmp_path / "run", model=net())
    assert evaluate(run, own).accuracy == pytest.approx(result["test_acc"])


def test_load_splits_reopens_as_its_name_and_scores_as_sklearn(tmp_path):
    pair = load_splits("digits", size=12)
    result = train(net(), pair, tmp_path / "run", CONFIG)
    assert not _in_memory(tmp_path / "run") and not _noted(result)
    run = load_run(tmp_path / "run", model=net())
    test = pair[1]
    with torch.no_grad():
        predicted = run.model(to_float(test.images, run.mean, run.std)).argmax(1)
    assert evaluate(run).accuracy == pytest.approx(accuracy_score(test.labels, predicted))
    assert evaluate(run).accuracy == pytest.approx(result["test_acc"])
