"""Loader with float labels is refused (they were truncated to int64: 0.7 became class 0),
and drop_last with a batch larger than the images is refused (an epoch yielded nothing, no
error). A short batch kept (drop_last False) is one batch as before."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import Loader
from cnnlab.errors import DataError

X = torch.randn(10, 1, 4, 4)
Y = torch.arange(10) % 3


def test_float_labels_are_refused_not_truncated():
    with pytest.raises(DataError, match=r"integer class indices, got torch\.float32.*long\(\)"):
        Loader(X, Y.float() + 0.7, 4)
    (_, y), *_ = Loader(X, Y.int(), 4, shuffle=False)  # integer dtypes are indices
    assert torch.equal(y, Y[:4]) and y.dtype == torch.int64


def test_drop_last_with_a_batch_larger_than_the_images_is_refused():
    with pytest.raises(DataError, match="batch_size 11 is larger than the 10 images per rank"):
        Loader(X, Y, 11, drop_last=True)
    batches = list(Loader(X, Y, 11, shuffle=False))
    assert len(batches) == 1 and torch.equal(batches[0][1], Y)
