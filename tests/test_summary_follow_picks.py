"""cnnlab.summary follows F.lp_pool2d (nn.LPPool2d): a pooling window as avg_pool2d's.
Truth: torch's real forward (the rows' shapes) and autograd (the input pixels the gradient of
one output unit reaches); before, it was a call the trace could not follow (the `unfollowed`
lint, no field after it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


class Around(nn.Module):
    """A conv, a call, a conv: `call` is what the trace must follow."""

    def __init__(self, call, a: nn.Module, b: nn.Module, mid: nn.Module | None = None) -> None:
        super().__init__()
        self.call, self.a, self.b, self.mid = call, a, b, mid

    def forward(self, x):
        y = self.call(self.a(x))
        return self.b(self.mid(y) if self.mid is not None else y)


def real_shapes(model: nn.Module, size: tuple) -> list[tuple[str, tuple]]:
    """(name, output shape of one image) of every leaf module, in the order a real forward
    calls them."""
    seen, handles = [], []
    for name, m in model.named_modules():
        if name and not list(m.children()):
            hook = lambda m, i, o, name=name: seen.append((name, tuple(o.shape[1:])))  # noqa: E731
            handles.append(m.register_forward_hook(hook))
    model(torch.randn(1, *size))
    for h in handles:
        h.remove()
    return seen


def extent(model: nn.Module, size: tuple, shift: int = 0, seed: int = 0) -> torch.Tensor:
    """The (H, W) input pixels the gradient of the centre unit of the model's (B, C, H, W)
    output reaches (moved by `shift` units down and right)."""
    torch.manual_seed(seed)
    x = torch.randn(1, *size, requires_grad=True)
    out = model(x)
    out[0, :, out.shape[2] // 2 + shift, out.shape[3] // 2 + shift].sum().backward()
    return x.grad[0].abs().sum(0) > 0


def span(seen: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the box around the pixels seen."""
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def widest(model: nn.Module, size: tuple) -> int:
    """The largest extent, along either axis, of the centre unit and its neighbours."""
    return max(max(span(extent(model, size, shift))) for shift in (0, 1))


def checked(model: nn.Module, size: tuple) -> list[tuple[str, int | None, int | None]]:
    """The summary's (name, field, jump) rows, once its shapes are the real forward's and no
    call is unfollowed."""
    s = summary(model, size)
    assert [(r.name, r.output_shape) for r in s.rows] == real_shapes(model, size)
    assert [w for w in s.warnings if w.code == "unfollowed"] == []
    return [(r.name, r.receptive_field, r.jump) for r in s.rows]


def convs(stride: int = 1, c: int = 4) -> tuple[nn.Module, nn.Module]:
    return nn.Conv2d(3, 4, 3, stride=stride, padding=1), nn.Conv2d(c, 4, 3, padding=1)


def test_lp_pool2d_is_a_pooling_window_seen_once():
    """nn.LPPool2d(2, 2) calls F.lp_pool2d, which pools x² with avg_pool2d: one row, a 2×2
    window of stride 2 (3 + 1 px, jump 2), and the conv after it reads 3 of its units:
    4 + 2·2."""
    model, size = Around(nn.Identity(), *convs(), mid=nn.LPPool2d(2, 2)), (3, 16, 16)
    assert checked(model, size) == [("a", 3, 1), ("call", 3, 1), ("mid", 4, 2), ("b", 8, 2)]
    assert widest(model, size) == 8


def test_lp_pool2d_with_ceil_mode_and_a_window_per_axis():
    """F.lp_pool2d(y, 2, (3, 2), stride=2, ceil_mode=True) on 15×15: torch's ceil_mode
    shape; the field per axis, 3 + 2 then + 2·2 = 9 high, 3 + 1 then + 2·2 = 8 wide."""
    call = lambda y: F.lp_pool2d(y, 2, (3, 2), stride=2, ceil_mode=True)  # noqa: E731
    model, size = Around(call, *convs()), (3, 15, 15)
    assert checked(model, size) == [("a", 3, 1), ("b", 9, 2)]
    assert max(span(extent(model, size, shift)) for shift in (0, 1)) == (9, 8)
