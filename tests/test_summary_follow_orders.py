"""cnnlab.summary follows orderings along an axis (picks.py): sort, torch.topk's values,
argsort, msort. Along channels or batch no position moves; along the width every output may
come from any column, so each sees the whole width. Truth: torch's real forward (the rows'
shapes) and autograd (the pixels one output unit's gradient reaches, over random inputs:
which value lands where depends on them); before, each was a call the trace could not
follow."""

from __future__ import annotations

import pytest
import torch

from cnnlab.design.summary import summary
from test_summary_follow_picks import Around, checked, convs, extent, real_shapes, span, widest

pytestmark = pytest.mark.usefixtures("one_thread")

ALONG_CHANNELS = {
    "torch.sort": lambda y: torch.sort(y, 1).values[:, :2],
    "torch.topk": lambda y: torch.topk(y, 2, dim=1).values,
    "Tensor.topk": lambda y: y.topk(2, 1, largest=False)[0],
    "argsort": lambda y: y.gather(1, torch.argsort(y, 1))[:, :2],
    "msort (batch)": lambda y: torch.msort(y)[:, :2],
}


@pytest.mark.parametrize("how", sorted(ALONG_CHANNELS))
def test_an_ordering_of_channels_or_batch_moves_no_position(how):
    """The 3×3 conv after a stride-2 one reads 3 of its units, 3 + 2·2 px, whichever
    channels the ordering picks."""
    model, size = Around(ALONG_CHANNELS[how], *convs(stride=2, c=2)), (3, 16, 16)
    assert checked(model, size) == [("a", 3, 2), ("b", 7, 2)]
    assert widest(model, size) == 7


ALONG_WIDTH = {
    "torch.sort": lambda y: torch.sort(y, 3).values,
    "Tensor.sort (dim=-1)": lambda y: y.sort(dim=-1, descending=True)[0],
    "torch.topk": lambda y: torch.topk(y, 4, dim=3).values,
    "Tensor.topk (last dim)": lambda y: y.topk(4).values,
    "argsort": lambda y: y.gather(3, y.argsort(dim=-1, descending=True)),
    "take_along_dim": lambda y: torch.take_along_dim(y, torch.argsort(y, 3), dim=3),
}


@pytest.mark.parametrize("how", sorted(ALONG_WIDTH))
def test_an_ordering_along_the_width_may_read_any_column(how):
    """The largest values of a row come from wherever they are in it: over random inputs
    the centre unit after a 3×3 conv, a topk along the width and a 1×1 conv reads 3 rows
    and every column of the 8×8 image."""
    model, size = Around(ALONG_WIDTH[how], convs()[0], torch.nn.Conv2d(4, 4, 1)), (3, 8, 8)
    s = summary(model, size)
    assert [w for w in s.warnings if w.code == "unfollowed"] == []
    assert [r.name for r in s.rows] == ["a", "b"]
    assert s.rows[-1].receptive_field >= 8
    seen = torch.zeros(8, 8, dtype=torch.bool)
    for seed in range(30):
        seen |= extent(model, size, seed=seed)
    assert span(seen) == (3, 8)
    assert [(r.name, r.output_shape) for r in s.rows] == real_shapes(model, size)
