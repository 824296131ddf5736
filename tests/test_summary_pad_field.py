"""The receptive field behind a pad of any mode (zeros, reflect, replicate, circular), as a
padding module, an F.pad in a forward or a conv's padding_mode: the pad adds positions
before the map, so a unit's field starts P · jump earlier (§3.2), whatever values the
positions hold; a crop (a negative pad) removes them, and the field starts later. Truth, on
each axis (the summary's row shows the larger, so the last conv is longer along the axis
checked): the input rows (columns) whose gradient for one output unit is non-zero (a real
forward and backward on random data, float64, no nonlinearity: nothing zeroes a path) are
the ones the pad copies into the field's positions (torch's own F.pad of the line numbers,
-1 for a zero); and the explorer's field of the same layer and axis."""

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


# crops (negative pads) of the map, alone and beside pads: F.pad's order, as PAD
CROPS = [(-2, -1, -2, -1), (2, -1, 3, -2), (-1, -1, -1, -1), (-2, 2, 1, -1)]
LAST = {"height": (3, 1), "width": (1, 3)}  # the last conv's kernel: this axis's field is larger
AXIS = {"height": 0, "width": 1}


class FunctionalPad(nn.Module):
    """F.pad(x, pad, mode) in forward, then a 3×3/2 conv and a last conv."""

    def __init__(self, pad: tuple[int, int, int, int], mode: str, last: tuple[int, int]):
        super().__init__()
        self.pad, self.mode = pad, mode
        self.conv = nn.Conv2d(1, 1, 3, stride=2)
        self.last = nn.Conv2d(1, 1, last)

    def forward(self, x):
        return self.last(self.conv(F.pad(x, self.pad, mode=self.mode)))


def net(form: str, mode: str, axis: str) -> tuple[nn.Module, tuple[int, int, int, int], str]:
    """(model, the pad before its first conv as F.pad gives it, its last conv's name). The
    last conv's kernel is longer along `axis`: the summary's row shows the larger axis."""
    last = nn.Conv2d(1, 1, LAST[axis])
    if form == "module":
        model = nn.Sequential(MODULES[mode](PAD), nn.Conv2d(1, 1, 3, stride=2), last)
        return model, PAD, "2"
    if form == "F.pad":
        return FunctionalPad(PAD, MODES[mode], LAST[axis]), PAD, "last"
    conv = nn.Conv2d(1, 1, 5, stride=2, padding=2, padding_mode=mode)
    return nn.Sequential(conv, last), (2, 2, 2, 2), "1"


def read_lines(model: nn.Module, unit: int, axis: str) -> set[int]:
    """The input rows (height) or columns (width) whose gradient for the output unit `unit`
    along `axis`, in the middle of the other (whose field holds real lines), is non-zero."""
    x = torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    y = model(x)[0, 0]
    (y[unit, y.shape[1] // 2] if axis == "height" else y[y.shape[0] // 2, unit]).backward()
    other = 1 - AXIS[axis]  # sum the other axis away
    return set(torch.nonzero(x.grad[0, 0].abs().sum(other)).flatten().tolist())


def source_lines(pad: tuple[int, ...], mode: str, positions: range, axis: str) -> set[int]:
    """The input rows (columns) the pad copies into these positions (input coordinates; -1:
    a zero): torch's own F.pad of the line numbers, read along a line of real values."""
    shape = (1, 1, SIZE, 1) if axis == "height" else (1, 1, 1, SIZE)
    lines = torch.arange(SIZE, dtype=torch.float64).view(shape).expand(1, 1, SIZE, SIZE)
    value = {"value": -1.0} if mode == "zeros" else {}
    padded = F.pad(lines, pad, mode=MODES[mode], **value)[0, 0]
    left, top = pad[0], pad[2]
    if axis == "height":  # padded index of position p: p + top; a real column: max(left, 0)
        return {int(padded[p + top, max(left, 0)]) for p in positions} - {-1}
    return {int(padded[max(top, 0), p + left]) for p in positions} - {-1}


def check(model: nn.Module, pad: tuple[int, ...], mode: str, last: str, axis: str) -> None:
    """Every unit along `axis` reads the lines the summary's field names, and the explorer's
    field of that axis is the summary's."""
    model = model.double()
    rf = _trace_module(model, (1, SIZE, SIZE)).rows[-1].rf  # the larger axis: `axis`
    out = model(torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64)).shape[2 + AXIS[axis]]
    for i in range(out):  # every unit along the axis, at the edges too
        centre = rf.start + i * rf.jump
        positions = range(int(centre - (rf.size - 1) / 2), int(centre + (rf.size - 1) / 2) + 1)
        assert read_lines(model, i, axis) == source_lines(pad, mode, positions, axis), (i, rf)
    explorer = receptive_fields(model, torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64))
    field = explorer[last][AXIS[axis]]
    assert (field.size, field.jump, field.start) == tuple(rf)


@pytest.mark.parametrize("axis", list(AXIS))
@pytest.mark.parametrize("form", ["module", "F.pad", "padding_mode"])
@pytest.mark.parametrize("mode", list(MODES))
def test_field_start_follows_the_pad_whatever_its_mode(form: str, mode: str, axis: str) -> None:
    torch.manual_seed(0)
    model, pad, last = net(form, mode, axis)
    check(model, pad, mode, last, axis)


@pytest.mark.parametrize("axis", list(AXIS))
@pytest.mark.parametrize("pad", CROPS)
def test_field_start_follows_a_crop(pad: tuple[int, int, int, int], axis: str) -> None:
    """A negative pad removes positions before the map: the field starts |P| · jump later."""
    torch.manual_seed(0)
    check(FunctionalPad(pad, "constant", LAST[axis]), pad, "zeros", "last", axis)


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
