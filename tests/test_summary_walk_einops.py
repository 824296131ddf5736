"""A spatial axis cut in two by a reshape, as practitioners write it with einops or .view:
max pooling `reduce(x, "b c (h 2) (w 2) -> b c h w", "max")`, space-to-depth
`rearrange(x, "b c (h p1) (w p2) -> b (c p1 p2) h w")`, a patch grid, Swin's window
partition `x.view(B, H/k, k, W/k, k, C)`. The outer part stays the axis, each unit a block
of k at stride k (an upper bound for the k values inside until something mixes them); the
trace took every unit to see the whole map, which also silenced rf-small. Truth: autograd's
extent of a unit and the step between two neighbours'."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange, reduce
from einops.layers.torch import Rearrange
from torch import nn

from cnnlab import summary


class EinopsPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.out(reduce(self.conv(x), "b c (h 2) (w 2) -> b c h w", "max"))


class SpaceToDepth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(32, 4, 3, padding=1)

    def forward(self, x):
        return self.out(rearrange(self.conv(x), "b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2))


class PatchGrid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patches = Rearrange("b c (h p1) (w p2) -> b (p1 p2 c) h w", p1=4, p2=4)
        self.conv, self.out = nn.Conv2d(48, 16, 3, padding=1), nn.Conv2d(16, 4, 1)

    def forward(self, x):
        return self.out(torch.relu(self.conv(self.patches(x))))


def reach(model: nn.Module, size: int, unit: int) -> tuple[int, int]:
    """(first row, extent) of the input rows that reach output unit (unit, unit), by autograd."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    model(x)[0, 0, unit, unit].backward()
    rows = x.grad[0].abs().sum((0, 2)).gt(0).nonzero()[:, 0]
    return int(rows.min()), int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("make", [EinopsPool, SpaceToDepth, PatchGrid], ids=lambda m: m.__name__)
def test_an_axis_cut_into_blocks_is_a_window_of_a_block(make):
    torch.manual_seed(0)
    model = make().eval()
    s = summary(model, (3, 32, 32))
    out = s.rows[-1]
    n = out.output_shape[-1]
    (a, extent), (b, _) = reach(model, 32, n // 2), reach(model, 32, n // 2 + 1)
    assert (out.receptive_field, out.jump) == (extent, b - a)


def test_rf_small_sees_an_einops_pooled_net_that_sees_little():
    """conv 3×3, einops 2×2 max pool, conv 3×3: 8 px of 32 enter the head's mean."""

    class Net(EinopsPool):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 10)

        def forward(self, x):
            return self.head(super().forward(x).mean((2, 3)))

    found = [w for w in summary(Net().eval(), (3, 32, 32)).warnings if w.code == "rf-small"]
    assert found and "8 px" in found[0].message


class WindowAttention(nn.Module):
    """Swin's first block, small: 4×4 patches, windows of 4×4 patches, attention inside."""

    def __init__(self, k: int = 4, d: int = 16) -> None:
        super().__init__()
        self.k = k
        self.embed = nn.Conv2d(3, d, 4, 4)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        f = self.embed(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        b, h, w, c = f.shape
        k = self.k
        win = f.view(b, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, c)
        q, kk, v = self.qkv(win).chunk(3, -1)
        return self.proj((q @ kk.transpose(1, 2)).softmax(-1) @ v)  # (B·windows, k·k, C)


def test_window_attention_sees_its_window_not_the_image():
    """A token after attention inside its window sees the window: 4 patches of 4 px."""
    model = WindowAttention().eval()
    (proj,) = [r for r in summary(model, (3, 32, 32)).rows if r.name == "proj"]
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    model(x)[1, 5, 0].backward()  # window 1, token 5
    rows = x.grad[0].abs().sum((0, 2)).gt(0).nonzero()[:, 0]
    assert proj.receptive_field == int(rows.max() - rows.min() + 1) == 16
