"""trace_conv's products: a product that is zero (0 times a negative weight) is 0, not IEEE's
-0.0, which NumPy shows as "-0."; every other product is exactly patch · filter. Truth: NumPy's
own element-wise product and torch's conv2d."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.reference import trace_conv

X = np.array([[1.0, -1.0, 0.0], [0.0, 2.0, -3.0], [1.0, 0.0, 1.0]])
W = np.array([[0.0, 1.0], [-1.0, 0.0]])


def test_a_zero_product_is_shown_as_zero_not_minus_zero():
    tr = trace_conv(X, W, out_index=(0, 0))
    zero = tr.products == 0
    assert zero.any() and not np.signbit(tr.products[zero]).any(), repr(tr.products)
    assert "-0." not in repr(tr.products) and "-0." not in repr(tr)


def test_the_products_are_still_exactly_patch_times_filter():
    for out_index in ((0, 0), (0, 1), (1, 0), (1, 1)):
        tr = trace_conv(X, W, out_index=out_index)
        i, j = out_index
        assert np.array_equal(tr.products[0], X[i : i + 2, j : j + 2] * W)
        torch_out = F.conv2d(torch.tensor(X)[None, None], torch.tensor(W)[None, None])
        assert tr.output == float(torch_out[0, 0, i, j])


def test_padding_zeros_times_negative_weights_are_zero():
    """The zero padding against a negative weight: the same -0.0, the same 0 shown."""
    tr = trace_conv(X, -np.ones((3, 3)), out_index=(0, 0), padding=1)
    assert not np.signbit(tr.products[tr.products == 0]).any(), repr(tr.products)
