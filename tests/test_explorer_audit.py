"""The explorer on what a careful user sends it: a conv whose input the model later changes in
place, and a geometry request too large to draw. Truths: nn.Conv2d's own output (a forward
hook on a fresh pass), the geometry formula, a 4xx status with a message."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.explorer.panels import MAX_PADDING, playground
from cnnlab.explorer.probe import Network, dot_product


class RectifiedAfterRead(nn.Module):
    """`side` reads h, then h is rectified in place (ReLU(inplace=True)): the input `side`
    multiplied its filter with is h before the ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.stem(x)
        s = self.side(h)
        h = self.act(h)
        return self.head((s + h).mean((2, 3)))


def test_a_conv_input_changed_in_place_later_is_traced_as_the_conv_read_it():
    torch.manual_seed(0)
    model = RectifiedAfterRead().eval()
    x = torch.randn(1, 1, 8, 8)
    seen = {}
    hook = model.side.register_forward_hook(lambda m, a, out: seen.setdefault("y", out.clone()))
    with torch.no_grad():
        model(x)
    hook.remove()
    net = Network.of(model, (1, 8, 8))
    probe = net.probe(x)
    assert (probe.inputs["side"] < 0).any()  # the input as read, before the in-place ReLU
    for f, i, j in [(0, 0, 0), (1, 3, 4), (3, 7, 7), (2, 5, 1)]:
        d = dot_product(net, probe, "side", f, i, j)
        own = float(seen["y"][0, f, i, j])
        assert abs(d["output"] - own) < 1e-5, (f, i, j, d["output"], own)
        assert abs(d["network"] - own) < 1e-6


def test_geometry_refuses_a_padding_too_large_to_draw():
    """The playground lists every window; a padding of 10^9 would list 2·10^9 of them (the
    server hung on that one request). Every other field is bounded, padding is too: a
    SpecError, which the app answers with 400 and its message."""
    start = time.perf_counter()
    with pytest.raises(SpecError, match="padding"):
        playground(7, 3, "100000")
    assert time.perf_counter() - start < 1
    assert playground(7, 3, str(MAX_PADDING))["output"] == 7 + 2 * MAX_PADDING - 3 + 1
