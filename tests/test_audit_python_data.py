"""A module trained in Python on `load_splits(...)`, as the README says for a model made for
other images, is trained and reopened as with `--data`: digits are not flipped by default (a
mirrored 2 is no digit) and the run records the data set's name, so its test split loads
again. It recorded "sklearn digits (train)", which nothing could load, and flipped digits."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
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


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8 written from the format description: magic, big-endian dims, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    ) + array.astype(np.uint8).tobytes()  # fmt: skip


@pytest.mark.parametrize("inside", ["", "fashion-mnist"])  # the two places root is searched
def test_a_run_on_fashion_mnist_from_root_reopens_that_directory(tmp_path, inside):
    """`load_splits("fashion-mnist", root=DIR)` recorded "fashion-mnist" and dropped DIR: the
    run reopened the system's copy (10,000 test images) and scored it without an error.
    Truth: the images written to DIR."""
    rng = np.random.default_rng(0)
    files = tmp_path / "custom" / inside
    files.mkdir(parents=True)
    written = {}
    for prefix, n in (("train", 40), ("t10k", 12)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (files / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (files / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        written[prefix] = torch.from_numpy(images)[:, None], torch.from_numpy(labels).long()
    splits = load_splits("fashion-mnist", root=tmp_path / "custom")
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10)
    )
    train(model, splits, tmp_path / "run", replace(QUICK, batch_size=8))
    run = load_run(tmp_path / "run", model=model)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        again = run.dataset(split)
        assert torch.equal(again.images, written[prefix][0])
        assert torch.equal(again.labels, written[prefix][1])
