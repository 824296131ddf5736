"""trace_conv on a bias or an index of the wrong size: a SpecError naming the argument, as
conv2d gives; it was NumPy's 'operands could not be broadcast together with remapped
shapes' and Python's 'too many values to unpack'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import SpecError
from cnnlab.reference import conv2d, trace_conv

X, W = np.arange(16.0).reshape(1, 4, 4), np.ones((3, 1, 2, 2))


def test_a_bias_of_another_size_is_named():
    with pytest.raises(SpecError, match=r"b must be a scalar or one value per filter \(3\)"):
        trace_conv(X, W, b=[1.0, 2.0])
    with pytest.raises(SpecError, match="b must have one value per filter"):
        conv2d(X[None], W, b=[1.0, 2.0])  # the sibling said so already


def test_an_index_of_four_numbers_is_named():
    with pytest.raises(SpecError, match=r"out_index must be \(f, i, j\) or \(i, j\)"):
        trace_conv(X, W, out_index=(0, 0, 0, 0))


@pytest.mark.parametrize("b", [2.5, [1.0, 2.0, 3.0]])
def test_a_good_bias_gives_torchs_value(b):
    want = F.conv2d(torch.tensor(X[None]), torch.tensor(W), torch.tensor(np.broadcast_to(b, 3)))
    got = trace_conv(X, W, b=b, out_index=(2, 1, 1)).output
    assert got == pytest.approx(want[0, 2, 1, 1].item())
