"""cnnlab.summary through a reshape that merges height into the channels, (B, C, H, W) ->
(B, C·H, W) (a text-line recogniser's sequence along the width): the width only moves, so
its field stays. Truth: autograd, the input columns one output position's gradient reaches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


class Columns(nn.Module):
    """A 1×3 conv, then its height merged into the channels: (B, 4·H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))

    def forward(self, x):
        return self.a(x).flatten(1, 2)


def test_merging_height_into_channels_keeps_the_width_field():
    """On a 1-pixel-high image each position of the sequence reads 3 columns; before, the
    width, moved from dim 3 to dim 2, was taken as merged too: 18 px, jump 16."""
    model, size = Columns(), (3, 1, 16)
    rows = [(r.name, r.output_shape, r.receptive_field, r.jump) for r in summary(model, size).rows]
    assert rows == [("a", (4, 1, 16), 3, 1), ("", (4, 16), 3, 1)]
    x = torch.randn(1, *size, requires_grad=True)
    model(x)[0, :, 8].sum().backward()
    assert int((x.grad[0].abs().sum((0, 1)) > 0).sum()) == 3
