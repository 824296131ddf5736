"""fixed-size names a fixed pooling window only where it set the flattened map's size: a
conv after it that changes the size (LeNet's C5, a 5×5 conv from 5×5 to 1×1) is what ties the
dense layer then, while a 1×1 or 'same' conv after the pool keeps the pool's size (ResNet's
AvgPool2d(7), a pool then a 1×1 classifier conv). Truths: torch's shapes (forward hooks: the
pool's output is or is not the flattened map's size), real forwards at the sizes named, and a
scan of every input size for the search that names them."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.facts import Window
from cnnlab.design.summary.lints import chain_size, sizes_that_run

pytestmark = pytest.mark.usefixtures("one_thread")


def net(pool: nn.Module, after: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), pool, after, nn.Flatten(), nn.Linear(8, 10)
    )


CASES = {  # (pool, conv after it, input side, whether the pool sets the 1×1 map)
    "maxpool then 4x4 conv": (nn.MaxPool2d(2), nn.Conv2d(4, 8, 4), 8, False),
    "avgpool then 5x5 conv (LeNet C5)": (nn.AvgPool2d(2), nn.Conv2d(4, 8, 5), 10, False),
    "avgpool(4) then 1x1 conv": (nn.AvgPool2d(4), nn.Conv2d(4, 8, 1), 4, True),
    "avgpool(4) then same 3x3": (nn.AvgPool2d(4), nn.Conv2d(4, 8, 3, padding="same"), 4, True),
    "avgpool(4) then 3x3 pad 1": (nn.AvgPool2d(4), nn.Conv2d(4, 8, 3, padding=1), 4, True),
}


@pytest.mark.parametrize("which", CASES)
def test_the_pool_is_named_only_where_its_output_is_the_flattened_maps_size(which: str):
    pool, after, side, sets = CASES[which]
    model = net(pool, after)
    shapes = {}
    for name in ("2", "3"):
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[2:]))
        )
    model(torch.randn(1, 1, side, side))
    assert shapes["3"] == (1, 1) and (shapes["2"] == (1, 1)) == sets
    lint = {w.code: w for w in summary(model, (1, side, side)).warnings}["fixed-size"]
    assert ("pooling window at layer 2" in lint.message) == sets, lint.message
    low, high = map(int, re.search(r"(\d+)–(\d+) px on each side", lint.message).groups())
    for n in (low, high):
        model(torch.randn(1, 1, n, n))  # runs at both ends
    for n in (low - 1, high + 1):
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 1, n, n))


windows = st.builds(
    lambda k, s, p, d, ceil, a: Window(
        (k, k), (s, s), (min(p, k // 2),) * 2, (d, d), ceil, after=None if a is None else (a, a)
    ),
    st.integers(1, 7), st.integers(1, 3), st.integers(0, 3), st.integers(1, 2), st.booleans(),
    st.none() | st.integers(0, 3),  # zeros after unlike before: an F.pad, padding="same"
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(windows, min_size=1, max_size=6), st.integers(1, 300))
def test_the_sizes_that_run_are_every_input_size_giving_the_map(chain_windows, near):
    """sizes_that_run searches outward from this input's size; the truth is every size from
    1 up scanned one by one (the map's size grows by at most one per pixel of input, so a
    scan to `near` plus the windows' total stride and reach passes the largest)."""
    chain: tuple = ()
    for w in chain_windows:  # the first window applied is the innermost pair
        chain = (w, chain)
    target = chain_size(chain, near, 0)
    assume(target > 0)  # a map the windows give at this input
    reach = math.prod(w.stride[0] for w in chain_windows) + sum(
        w.dilation[0] * w.kernel[0] for w in chain_windows
    )
    runs = [n for n in range(1, near + reach + 2) if chain_size(chain, n, 0) == target]
    assert sizes_that_run(chain, target, 0, near) == (runs[0], runs[-1])
