"""The receptive field the explorer draws for a clicked unit (`probe.receptive_fields`), on
models whose convs read views of another layer's output. Truth: the input pixels whose
gradient for the unit is non-zero (all weights positive: nothing cancels)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explorer.probe import receptive_fields, unit_box

pytestmark = pytest.mark.usefixtures("one_thread")


class Halves(nn.Module):
    """A stem, then each half of its channels (torch.chunk) through its own conv: the wide
    one first, so the narrow one's input is made before the wide one's output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.wide = nn.Conv2d(2, 2, 7, padding=3)
        self.narrow = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        a, b = torch.chunk(self.stem(x), 2, dim=1)
        return torch.cat([self.wide(a), self.narrow(b)], 1)


def seen_rows(model: nn.Module, layer: str, i: int, j: int) -> list[int]:
    """Input rows whose gradient for unit (0, i, j) of `layer`'s output is non-zero."""
    x = torch.ones(1, 1, 31, 31, requires_grad=True)
    out = {}
    model.get_submodule(layer).register_forward_hook(lambda m, a, y: out.update(y=y))
    model(x)
    out["y"][0, 0, i, j].backward()
    return torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist()


@pytest.mark.parametrize("layer", ["stem", "wide", "narrow"])
def test_a_conv_reading_half_a_chunk_has_its_own_field(layer):
    """narrow's field was wide's plus its own kernel (11 px, not 5): the chunk it reads was
    given the widest field made so far, wide's output's."""
    torch.manual_seed(0)
    model = Halves()
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    fields = receptive_fields(model, torch.ones(1, 1, 31, 31))
    box = unit_box(fields[layer], 15, 15)
    rows = list(range(int(box["top"]), int(box["top"]) + box["height"]))
    assert rows == seen_rows(model, layer, 15, 15)
