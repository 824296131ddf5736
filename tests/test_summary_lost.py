"""cnnlab.summary's lints where the trace loses a field or cuts a map into windows: they say
what the trace could not follow, every row without a field named, and nothing the model does
not have. Truths: the model's own structure (commented), torch's forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


class AfterALoss(nn.Module):
    """torch.renorm of the width (not followed), then 1×1 convs with a GELU (F.gelu: a
    function call) between the first two and a residual sum between the second and third:
    no two of them are one linear map."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b, self.c = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = torch.renorm(self.stem(x), 2, 3, 1.0)
        y = self.b(F.gelu(self.a(y)))
        return self.c(y + torch.renorm(x.mean(1, keepdim=True), 2, 2, 1.0))


def test_a_lost_field_carries_no_linear_path_to_the_next_layers():
    lints = [(w.code, w.layer) for w in summary(AfterALoss(), (3, 8, 8)).warnings]
    assert lints == [("unfollowed", "(model)")]


class TwoLosses(nn.Module):
    """Two functions the trace cannot follow in one forward, on two branches."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.stem(x)
        return self.out(self.a(torch.renorm(y, 2, 3, 1.0)) + self.b(torch.rot90(y, 1, (2, 3))))


def test_every_row_without_a_field_is_named_by_the_lint_of_its_layer():
    s = summary(TwoLosses(), (3, 8, 8))
    (lint,) = [w for w in s.warnings if w.code == "unfollowed"]
    assert "torch.renorm and torch.rot90" in lint.message
    unknown = [r.name for r in s.rows if r.receptive_field is None]
    assert unknown == ["a", "b", "out"]
    assert "3 row(s) after it have none (a, b, out)" in lint.message


class GateThenLoss(nn.Module):
    """A squeeze-and-excitation gate (its mean over H, W looks like a head) on a 3-px field,
    then a field the trace loses, then the real head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.convs = nn.Sequential(*[nn.Conv2d(8, 8, 3, 2, 1) for _ in range(3)])
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = F.relu(self.stem(x))
        y = y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        y = self.convs(torch.renorm(y, 2, 3, 1.0))
        return self.fc(y.mean((2, 3)))


def test_rf_small_says_nothing_of_a_head_whose_field_is_lost():
    lints = [(w.code, w.layer) for w in summary(GateThenLoss(), (3, 16, 16)).warnings]
    assert lints == [("unfollowed", "(model)")]


class Windows(nn.Module):
    """Swin's window attention layout: a 4×4/4 patch embedding, channels last, the map cut
    into 2×2 windows ((B, H, W, C) -> (B·H/2·W/2, 4, C)), a Linear on each position's
    channels, the windows sewn back, then a global mean and a classifier (`pooled`) or a
    1×1 conv (a map out, no head at all): no flatten head either way."""

    def __init__(self, pooled: bool = True) -> None:
        super().__init__()
        self.pooled = pooled
        self.embed = nn.Conv2d(3, 8, 4, 4)
        self.mix = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 2)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.embed(x).permute(0, 2, 3, 1)  # (B, H, W, 8)
        b, h, w, c = y.shape
        win = y.view(b, h // 2, 2, w // 2, 2, c).transpose(2, 3).reshape(-1, 4, c)
        win = F.relu(self.mix(win))  # (B·windows, 4, 8)
        y = win.view(b, h // 2, w // 2, 2, 2, c).transpose(2, 3).reshape(b, h, w, c)
        return self.fc(y.mean((1, 2))) if self.pooled else self.out(y.permute(0, 3, 1, 2))


def test_a_map_cut_into_windows_is_no_flatten_head():
    model, size = Windows(), (3, 32, 32)
    s = summary(model, size)
    assert model(torch.zeros(1, *size)).shape == (1, 2) and s.rows[-1].output_shape == (2,)
    assert not {"fixed-size", "flatten-explosion"} & {w.code for w in s.warnings}
    assert summary(model, (3, 48, 48)).rows[-1].output_shape == (2,)  # it runs on any size


def test_a_map_cut_into_windows_is_no_head_for_rf_small():
    """A map out (segmentation-like): no layer pools or flattens for a head, so rf-small has
    nothing to say (it said the windows were the head's input, of a 4-px field)."""
    assert summary(Windows(pooled=False), (3, 32, 32)).warnings == []
