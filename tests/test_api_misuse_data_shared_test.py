"""train(model, (ds, ds)): a test set that is (mostly) the training set is said in the
notes, with how many test images are training images; its test accuracy measured memory and
read as any other. Digits' own test split (no shared image) gets no note."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data import load_dataset, train_val_split
from cnnlab.train import TrainConfig, train

CONFIG = TrainConfig(epochs=1, batch_size=64, precision="fp32", flip=False)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def _shared(notes):
    return [n for n in notes if "training images too" in n]


def _count_shared(test, train_part) -> int:
    """Truth by Python's set of each image's bytes."""
    seen = {bytes(x.numpy().tobytes()) for x in train_part.images}
    return sum(bytes(x.numpy().tobytes()) in seen for x in test.images)


def test_the_training_set_as_test_set_is_noted_with_its_count():
    tr = load_dataset("digits", "train")
    (note,) = _shared(train(net(), (tr, tr), None, CONFIG)["notes"])
    train_part, _ = train_val_split(tr, CONFIG.val_fraction, CONFIG.seed)
    shared = _count_shared(tr, train_part)
    assert shared > len(tr) // 2
    assert note.startswith(f"{shared} of the {len(tr)} test images are training images too")


def test_a_held_out_test_set_gets_no_note():
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert _count_shared(te, tr) < len(te) // 2
    assert not _shared(train(net(), (tr, te), None, CONFIG)["notes"])
