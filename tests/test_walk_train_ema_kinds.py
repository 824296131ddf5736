"""The EMA of a model whose parameters are not all floating point: an index kept as an
integer nn.Parameter (requires_grad=False, the only way torch allows one) is copied, as
buffers are; the floating-point parameters are averaged by the EMA's formula."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train.state import EMA


class Reordered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.order = nn.Parameter(torch.tensor([3, 2, 1, 0]), requires_grad=False)
        self.keep = nn.Parameter(torch.tensor([True, False, True, True]), requires_grad=False)

    def forward(self, x):
        return self.conv(x)[:, self.order] * self.keep.view(1, -1, 1, 1)


def test_integer_and_bool_parameters_are_copied_and_floats_averaged():
    """Truth: ema ← d·ema + (1−d)·w with d = min(decay, (1+t)/(10+t)), computed here with
    plain tensor arithmetic; the integer and bool parameters equal the model's."""
    torch.manual_seed(0)
    model = Reordered()
    ema = EMA(model, decay=0.9)
    start = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        model.conv.weight.add_(1.0)
        model.order.copy_(torch.tensor([0, 1, 2, 3]))
        model.keep.fill_(True)
    ema.update(model, t=5)
    d = min(0.9, 6 / 15)
    want = d * start["conv.weight"] + (1 - d) * model.conv.weight
    torch.testing.assert_close(ema.model.conv.weight, want, rtol=1e-6, atol=1e-7)
    assert torch.equal(ema.model.order, model.order) and ema.model.order.dtype == torch.int64
    assert torch.equal(ema.model.keep, model.keep)
