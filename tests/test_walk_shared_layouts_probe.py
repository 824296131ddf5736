"""One GELU module applied to a conv's (B, C, H, W) and, after a Linear, to (B, H, W, C)
(`test_walk_shared_layouts.Shared`): `layer_axes` (probe, actmax) and the linear probe's
features read each call in its own layout. `channel_dim` keyed it by module, the last call's
dim 3, so `act` (channels first) was pooled as if its W were channels. Truth: each call's
output as a plain forward hook sees it, permuted by torch where it holds channels last, pooled
by `pool_features` (the formula in its docstring)."""

from __future__ import annotations

import pytest
import torch

from cnnlab.explain.probe import extract_features, pool_features
from cnnlab.inspect.batch_axis import layer_axes
from test_walk_shared_layouts import CALLS, hooked, shared

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def test_layer_axes_and_probe_features_read_each_call_in_its_layout():
    model, x = shared(), torch.randn(4, 1, 16, 12)
    assert [layer_axes(model, x, call) for call in CALLS] == [(0, 1), (0, 3)]  # act: was 3
    feats, _ = extract_features(model, (x, torch.arange(4) % 3), list(CALLS), cap=100_000)
    truth = hooked(model, x)
    for call in CALLS:
        torch.testing.assert_close(feats[call], pool_features(truth[call], 100_000))
