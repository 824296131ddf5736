"""load_dataset's `size` given as a model's input shape (1, 28, 28) is told to split it into
channels and (H, W) (it failed with 'too many values to unpack'); other forms (28.0, '28',
(28,)) are named too (TypeError/ValueError from unpacking). Valid forms give one result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import load_dataset, resize_crop
from cnnlab.errors import DataError


def test_an_input_shape_as_size_is_told_channels_and_size():
    with pytest.raises(
        DataError, match=r"\(1, 28, 28\), an input shape.*channels=1, size=\(28, 28\)"
    ):
        load_dataset("digits", size=(1, 28, 28))
    with pytest.raises(DataError, match=r"channels=3, size=\(16, 12\)"):
        resize_crop(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), torch.Size([3, 16, 12]))


@pytest.mark.parametrize("size", [28.0, "28", (28,), (28, 28.5), True])
def test_other_forms_are_named(size):
    with pytest.raises(DataError, match="size must be one int or \\(H, W\\) of ints"):
        load_dataset("digits", size=size)


def test_valid_forms_agree():
    want = load_dataset("digits", size=12).images
    for size in [(12, 12), [12, 12], torch.Size([12, 12]), (np.int64(12), 12)]:
        assert torch.equal(load_dataset("digits", size=size).images, want)
    assert want.shape[1:] == (1, 12, 12)
