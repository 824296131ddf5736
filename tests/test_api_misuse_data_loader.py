"""Loader with float labels is refused (they were truncated to int64: 0.7 became class 0).
(An epoch of no batch, drop_last with a batch larger than a rank's images, stays allowed:
test_data_loader's shard property holds equal, possibly zero, batch counts on every rank.)"""

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
