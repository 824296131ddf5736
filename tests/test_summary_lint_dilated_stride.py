"""dilated-stride: a dilated window at stride > 1 whose taps skip pixels inside the map (3×3,
dilation 2, stride 2: only the even ones are read, anywhere), which the floor lint, counting
the right/bottom edge, did not say (silent on 31×31, where 15 columns and 15 rows are unread).
Truth: autograd (pixels whose input gradient is zero for every output)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def unread_inside(conv: nn.Conv2d, size: int) -> tuple[int, int]:
    """(rows, columns) no output reads before the last row / column one reads."""
    x = torch.randn(1, conv.in_channels, size, size + 1, requires_grad=True)
    conv(x).abs().sum().backward()
    read = x.grad.abs().sum(dim=(0, 1)) > 0
    counts = []
    for line in (read.any(dim=1), read.any(dim=0)):
        last = int(line.nonzero().max())
        counts.append(int((~line[: last + 1]).sum()))
    return tuple(counts)


GRID = list(itertools.product((5, 8, 9, 12), (2, 3), (2, 3), (2, 3), (0, 1, 2)))


@pytest.mark.parametrize(("size", "kernel", "stride", "dilation", "pad"), GRID)
def test_it_fires_where_autograd_finds_pixels_unread_inside(size, kernel, stride, dilation, pad):
    conv = nn.Conv2d(1, 2, kernel, stride, pad, dilation=dilation)
    if dilation * (kernel - 1) + 1 > size + 2 * pad:
        return  # torch refuses a window wider than its padded input
    torch.nn.init.uniform_(conv.weight, 0.5, 1.0)  # no zero weight hides a read pixel
    rows, cols = unread_inside(conv, size)
    if stride > dilation * (kernel - 1) + 1:
        rows = cols = 0  # the stride passes the window: a skip by design, not linted
    lints = {w.code: w for w in summary(conv, (1, size, size + 1)).warnings}
    assert ("dilated-stride" in lints) == bool(rows or cols)
    if rows:
        assert f"{rows} of the {size} rows" in lints["dilated-stride"].message
    if cols:
        assert f"{cols} of the {size + 1} columns" in lints["dilated-stride"].message


def test_the_31_px_case_the_floor_lint_missed() -> None:
    conv = nn.Conv2d(1, 2, 3, 2, 2, dilation=2)
    assert unread_inside(conv, 31) == (15, 15)
    codes = {w.code for w in summary(conv, (1, 31, 31)).warnings}
    assert codes == {"dilated-stride"}
    assert {
        w.code for w in summary(nn.Conv2d(1, 2, 3, 1, 2, dilation=2), (1, 31, 31)).warnings
    } == set()
