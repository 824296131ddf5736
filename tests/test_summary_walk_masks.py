"""Masks and noise as practitioners write them in a forward: `torch.where(m, x,
torch.zeros_like(x))`, a VAE's `mu + torch.randn_like(std) * std`, masks joined with `~`,
`&`, `|`, `^`, a buffer filled by `torch.empty_like(x).copy_(x)`. A tensor made "like" x
reads x's shape, not its values; the bitwise operators are pointwise. Each map stays
followed. Truth: autograd's extent of the output's centre unit, torch's own shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import summary


def extent(model: nn.Module, size: tuple[int, ...]) -> int:
    """Rows of the input that reach the output's centre unit, by autograd."""
    x = torch.randn(1, *size, requires_grad=True)
    y = model(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return int(x.grad[0].abs().sum((0, 2)).gt(0).sum())


MASKS = {
    "where-zeros_like": lambda f: torch.where(f > 0, f, torch.zeros_like(f)),
    "ones_like": lambda f: f * torch.ones_like(f),
    "full_like": lambda f: torch.maximum(f, torch.full_like(f, 0.1)),
    "randn_like": lambda f: f + torch.randn_like(f) * 0.1,  # a VAE's reparameterization
    "rand_like": lambda f: f * (torch.rand_like(f) > 0.1),
    "empty_like-copy_": lambda f: torch.empty_like(f).copy_(f),
    "clamp-min-zeros_like": lambda f: f.clamp(min=torch.zeros_like(f)),
    "invert": lambda f: f.masked_fill(~(f > 0), 0.0),
    "and": lambda f: f * ((f > 0) & (f < 1)),
    "or": lambda f: f * ((f > 0) | (f < -1)),
    "xor": lambda f: f * ((f > 0) ^ (f < -1)),
}


class Masked(nn.Module):
    def __init__(self, op) -> None:
        super().__init__()
        self.op = op
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.out(self.op(self.conv(x)))


@pytest.mark.parametrize("name", list(MASKS))
def test_a_mask_or_noise_made_in_forward_keeps_the_field(name):
    model = Masked(MASKS[name]).eval()
    s = summary(model, (3, 12, 12))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    assert [r.receptive_field for r in s.rows] == [3, 5] == [3, extent(model, (3, 12, 12))]
    with torch.no_grad():
        shape = tuple(model(torch.zeros(1, 3, 12, 12)).shape[1:])
    assert [r.output_shape for r in s.rows] == [(8, 12, 12), shape]


class GatedPool(nn.Module):
    """A classifier pooling only where a learned gate is on (masked average pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.gate = nn.Conv2d(8, 1, 1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        f = self.conv(x)
        m = torch.sigmoid(self.gate(f)) > 0.5
        f = torch.where(m, f, torch.zeros_like(f)).masked_fill(~m, 0.0)
        return self.head(f.sum((2, 3)) / m.sum((2, 3)).clamp(min=1))


def test_a_masked_average_pool_head_sees_the_image_and_its_map_is_named():
    s = summary(GatedPool().eval(), (3, 16, 16))
    assert [r.name for r in s.rows] == ["conv", "gate", "head"]
    assert all(r.receptive_field is not None for r in s.rows)
    assert s.rows[-1].receptive_field >= 16  # a global pool: every unit, the whole image
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings


def test_a_row_of_a_tensor_made_like_the_input_reads_no_pixel():
    """A module returning zeros_like(x) (a placeholder branch) reads no pixel: field 0, as
    the summary shows a position embedding of fixed ids."""

    class Zeros(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Zeros())
    s = summary(model, (3, 8, 8))
    assert [(r.output_shape, r.receptive_field) for r in s.rows] == [
        ((4, 8, 8), 3), ((4, 8, 8), 0),
    ]  # fmt: skip
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    y = model(x)
    assert not y.requires_grad  # autograd: no input pixel reaches it
