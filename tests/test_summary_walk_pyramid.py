"""Downsampling with F.interpolate as practitioners write it: an image pyramid
(`F.interpolate(x, scale_factor=0.5)`), a feature map brought to a coarser size (`size=`,
`mode="area"`), bilinear or bicubic at a whole factor. Each output reads a window of the
input at stride S (its taps: 1 nearest, 2 bilinear at an even S, 4 bicubic at an even S, S
area; at an odd S bilinear and bicubic sample a pixel exactly). It was 'unfollowed'. Truth:
autograd, the extent of an output unit's input pixels and the step between two neighbours'."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import summary


class Down(nn.Module):
    def __init__(self, **how) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.out(F.interpolate(self.conv(x), **self.how))


def reach(model: nn.Module, size: int, unit: int) -> tuple[int, int]:
    """(first row, extent) of the input rows that reach output unit (unit, unit), by autograd."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    model(x)[0, 0, unit, unit].backward()
    rows = x.grad[0].abs().sum((0, 2)).gt(0).nonzero()[:, 0]
    return int(rows.min()), int(rows.max() - rows.min() + 1)


CASES = {
    "nearest-0.5": {"scale_factor": 0.5},
    "nearest-exact-0.25": {"scale_factor": 0.25, "mode": "nearest-exact"},
    "bilinear-0.5": {"scale_factor": 0.5, "mode": "bilinear"},
    "bilinear-size": {"size": (8, 8), "mode": "bilinear", "align_corners": False},
    "bilinear-third": {"size": (8, 8), "mode": "bilinear"},  # 24 -> 8: S = 3, odd
    "bicubic-0.5": {"scale_factor": 0.5, "mode": "bicubic"},
    "area-size": {"size": (6, 6), "mode": "area"},
}
INPUT = {"bilinear-third": 24, "area-size": 24, "nearest-exact-0.25": 32}


@pytest.mark.parametrize("name", list(CASES))
def test_a_downsampling_is_a_window_at_its_stride(name):
    model, size = Down(**CASES[name]).eval(), INPUT.get(name, 16)
    s = summary(model, (3, size, size))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    out = s.rows[-1]
    n = out.output_shape[-1]
    (a, extent), (b, _) = reach(model, size, n // 2), reach(model, size, n // 2 + 1)
    assert (out.receptive_field, out.jump) == (extent, b - a)


def test_align_corners_and_antialias_stay_unfollowed_and_say_so():
    for how in ({"align_corners": True}, {"antialias": True}):
        model = Down(scale_factor=0.5, mode="bilinear", **how).eval()
        s = summary(model, (3, 16, 16))
        assert s.rows[-1].receptive_field is None
        assert [w.code for w in s.warnings] == ["unfollowed"]


class Pyramid(nn.Module):
    """One conv stem on the image and on its half; the half's features upsampled back."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        half = self.stem(F.interpolate(x, scale_factor=0.5, mode="bilinear"))
        up = F.interpolate(half, scale_factor=2, mode="bilinear")
        return self.head(torch.cat([self.stem(x), up], 1))


def test_an_image_pyramids_half_scale_branch_is_followed():
    """stem on the half: 3 taps of 2 px apart after 2 bilinear taps: 6 px, jump 2."""
    s = summary(Pyramid().eval(), (3, 32, 32))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    rows = [(r.name, r.call, r.receptive_field, r.jump) for r in s.rows]
    assert rows[:2] == [("stem.0", 1, 6, 2), ("stem.1", 1, 6, 2)]
    assert all(r.receptive_field is not None for r in s.rows)
