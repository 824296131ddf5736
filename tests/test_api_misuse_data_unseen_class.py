"""A class with no training image (a classes list longer than the labels use, a subset that
lost a class) is said in train's notes: the model has its output but never saw one, and the
run gave no sign. A set with every class in it gets no such note."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data import ImageSet, load_dataset
from cnnlab.train import TrainConfig, train

CONFIG = TrainConfig(epochs=1, batch_size=64, precision="fp32", flip=False)


def net(k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, k),
    )  # fmt: skip


def _unseen(notes):
    return [n for n in notes if "had no training image" in n]


def test_a_class_without_training_images_is_noted():
    tr = load_dataset("digits", "train")
    longer = ImageSet(tr.images, tr.labels, (*tr.classes, "ten", "eleven"), "mine")
    counts = torch.bincount(longer.labels, minlength=12)  # torch's count: classes 10, 11 empty
    assert counts[10:].tolist() == [0, 0] and bool((counts[:10] > 0).all())
    (note,) = _unseen(train(net(12), longer, None, CONFIG)["notes"])
    assert note.startswith("2 of the 12 classes had no training image (ten, eleven)")


def test_every_class_seen_gives_no_note():
    tr = load_dataset("digits", "train")
    assert not _unseen(train(net(10), tr, None, CONFIG)["notes"])
