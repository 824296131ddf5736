"""The validation split never takes a class's last training image. Its largest-remainder
picks gave one to a class of a single image whenever that class's remainder came first: a
folder of three classes of 20 images and five of one (val_fraction 0.1: 6.5 images' worth,
7 picks) had one class of one image in validation only, a class the model never saw in
training. The truth: the labels of each part, counted."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import ImageSet, train_val_split
from cnnlab.errors import DataError


def _set(counts: list[int]) -> ImageSet:
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    n = len(labels)
    ids = torch.arange(n, dtype=torch.int32).view(n, 1, 1, 1)
    images = torch.cat([ids % 256, ids // 256], 1).to(torch.uint8)  # two channels: the index
    return ImageSet(images, labels, tuple(f"c{c}" for c in range(len(counts))), "ids")


def _ids(part: ImageSet) -> list[int]:
    return (part.images[:, 0, 0, 0].long() + 256 * part.images[:, 1, 0, 0].long()).tolist()


def test_a_class_of_one_image_keeps_it_for_training():
    counts = [20, 20, 20, 1, 1, 1, 1, 1]
    for seed in range(5):
        train, val = train_val_split(_set(counts), 0.1, seed)
        assert all(k >= 1 for k in train.class_counts()), train.class_counts()
        assert len(val) == 7  # round(0.1 · 65): the picks went to classes with room
        assert set(_ids(train)).isdisjoint(_ids(val)) and len(train) + len(val) == 65


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=2, max_size=8),
    frac=st.floats(0.05, 0.5),
    seed=st.integers(0, 99),
)
def test_every_class_keeps_a_training_image(counts, frac, seed):
    ds = _set(counts)
    target = int(frac * sum(counts) + 0.5)
    if target == 0 or all(k == 1 for k in counts):
        # no validation image without taking a class's only one: refused, not taken
        with pytest.raises(DataError, match="no validation image"):
            train_val_split(ds, frac, seed)
        return
    train, val = train_val_split(ds, frac, seed)
    assert all(k >= 1 for k in train.class_counts())
    assert len(val) <= target and set(_ids(train)).isdisjoint(_ids(val))
    assert len(train) + len(val) == sum(counts)
    for k, v in zip(counts, val.class_counts(), strict=True):
        assert abs(v - frac * k) <= 1  # still in proportion, within one image


def _largest_remainder(counts: list[int], frac: float) -> list[int]:
    """The split's rule before it kept a class's last image: floors, then one more to the
    largest remainders (ties: lower index), round(frac · N) in all."""
    exact = [frac * k for k in counts]
    quotas = [int(q // 1) for q in exact]
    order = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quotas[c]), c))
    for c in order[: int(frac * sum(counts) + 0.5) - sum(quotas)]:
        quotas[c] += 1
    return quotas


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(2, 500), min_size=1, max_size=12),
    frac=st.floats(0.01, 0.5),
)
def test_without_a_class_of_one_image_the_quotas_are_as_before(counts, frac):
    """A resumed run draws its validation split again: for every data set whose classes
    hold two images or more (at val_fraction up to 0.5) it must be the split it had."""
    from cnnlab.data.split import class_quotas

    assert class_quotas(counts, frac) == _largest_remainder(counts, frac)
