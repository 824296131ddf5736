"""A module trained in Python on `load_splits(...)`, as the README says for a model made for
other images, is trained and reopened as with `--data`: digits are not flipped by default (a
mirrored 2 is no digit) and the run records the data set's name, so its test split loads
again. It recorded "sklearn digits (train)", which nothing could load, and flipped digits."""

from __future__ import annotations

import json

import torch
from torch import nn

from cnnlab.data import load_splits
from cnnlab.train import TrainConfig, load_run, train

QUICK = TrainConfig(epochs=1, batch_size=128, tta=False, precision="fp32")


def small() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def test_a_run_on_load_splits_records_the_data_set_and_its_flip_rule(tmp_path):
    torch.manual_seed(0)
    train_set, test_set = load_splits("digits", channels=3, size=(12, 12))
    assert train_set.loaded_as == "digits"
    result = train(small(), (train_set, test_set), tmp_path / "run", QUICK)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == "digits" and config["flip"] is False
    run = load_run(tmp_path / "run", model=small())
    again = run.dataset("test")  # the same images, converted as they were for training
    assert torch.equal(again.images, test_set.images)
    with torch.no_grad():
        logits = run.model(run.preprocess(again.images))
    accuracy = (logits.argmax(1) == again.labels).float().mean().item()
    assert abs(accuracy - result["test_acc"]) < 1e-6
