"""The receptive field behind a pad of any mode (zeros, reflect, replicate, circular), as a
padding module, an F.pad in a forward or a conv's padding_mode: the pad adds positions
before the map, so a unit's field starts P · jump earlier (§3.2), whatever values the
positions hold. Truth: the input rows whose gradient for one output unit is non-zero (a
real forward and backward on random data, float64, no nonlinearity: nothing zeroes a path)
are the rows the pad copies into the field's positions (torch's own F.pad of the row
numbers, -1 for a zero); and the explorer's field of the same layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import _trace_module, summary
from cnnlab.explorer.probe import receptive_fields

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 12
PAD = (2, 1, 3, 0)  # F.pad's order: left, right, top, bottom
MODES = {"zeros": "constant", **{m: m for m in ("reflect", "replicate", "circular")}}  # F.pad mode
MODULES = {
    "zeros": nn.ZeroPad2d,
    "reflect": nn.ReflectionPad2d,
    "replicate": nn.ReplicationPad2d,
    "circular": nn.CircularPad2d,
}


class FunctionalPad(nn.Module):
    """F.pad(x, PAD, mode) in forward, then a 3×3/2 conv and a 3×3 conv."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(1, 1, 3, stride=2)
        self.last = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.last(self.conv(F.pad(x, PAD, mode=self.mode)))


def net(form: str, mode: str) -> tuple[nn.Module, tuple[int, int, int, int], str]:
    """(model, the pad before its first conv as F.pad gives it, its last conv's name)."""
    if form == "module":
        model = nn.Sequential(MODULES[mode](PAD), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
        return model, PAD, "2"
    if form == "F.pad":
        return FunctionalPad(MODES[mode]), PAD, "last"
    conv = nn.Conv2d(1, 1, 5, stride=2, padding=2, padding_mode=mode)
    return nn.Sequential(conv, nn.Conv2d(1, 1, 3)), (2, 2, 2, 2), "1"


def read_rows(model: nn.Module, i: int, j: int) -> set[int]:
    """The input rows whose gradient for the output unit (0, 0, i, j) is non-zero."""
    x = torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    model(x)[0, 0, i, j].backward()
    return set(torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist())


def source_rows(pad: tuple[int, int, int, int], mode: str, positions: range) -> set[int]:
    """The input rows the pad copies into these positions (input coordinates; -1: a zero)."""
    rows = torch.arange(SIZE, dtype=torch.float64).view(1, 1, SIZE, 1).expand(1, 1, SIZE, SIZE)
    value = {"value": -1.0} if mode == "zeros" else {}
    left, top = pad[0], pad[2]
    padded = F.pad(rows, pad, mode=MODES[mode], **value)[0, 0, :, left]  # a real column
    return {int(padded[p + top]) for p in positions} - {-1}


@pytest.mark.parametrize("form", ["module", "F.pad", "padding_mode"])
@pytest.mark.parametrize("mode", list(MODES))
def test_field_start_follows_the_pad_whatever_its_mode(form: str, mode: str) -> None:
    torch.manual_seed(0)
    model, pad, last = net(form, mode)
    model = model.double()
    rf = _trace_module(model, (1, SIZE, SIZE)).rows[-1].rf  # height (the axes tie)
    out = model(torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64)).shape[2]
    for i in range(out):  # every unit down the middle column, at the edges too
        centre = rf.start + i * rf.jump
        positions = range(int(centre - (rf.size - 1) / 2), int(centre + (rf.size - 1) / 2) + 1)
        assert read_rows(model, i, 2) == source_rows(pad, mode, positions), (i, rf)
    explorer = receptive_fields(model, torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64))
    height = explorer[last][0]
    assert (height.size, height.jump, height.start) == tuple(rf)


class Padded(nn.Module):
    """F.pad(x, pad) of zeros, then a 3×3/2 conv and a 3×3 conv."""

    def __init__(self, pad: tuple[int, ...]):
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, 1, 3, stride=2)
        self.last = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.last(self.conv(F.pad(x, self.pad)))


@pytest.mark.parametrize("pad", [(1, 1, 1, 1, 0, 0), (1, 1, 1, 1, 0, 0, 0, 0)])
def test_zeros_of_the_map_read_alike_whatever_pairs_follow(pad: tuple[int, ...]) -> None:
    """F.pad's pairs after the first two pad the axes before the map (channels, batch): a
    pair of 0 adds nothing, so the same lints and fields as the 4-value pad (the same
    tensor: torch.equal)."""
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(F.pad(x, pad), F.pad(x, pad[:4]))
    plain, longer = summary(Padded(pad[:4]), (1, 16, 16)), summary(Padded(pad), (1, 16, 16))
    assert longer.warnings == plain.warnings
    assert longer.rows == plain.rows
    fields = [[r.rf for r in _trace_module(Padded(p), (1, 16, 16)).rows] for p in (pad[:4], pad)]
    assert fields[0] == fields[1]
