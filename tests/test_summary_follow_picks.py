"""cnnlab.summary follows calls that move or pick values along an axis (picks.py) and the
LP pools: flips, repeat_interleave, F.lp_pool1d / lp_pool2d (nn.LPPool1d / 2d), gather along
channels or tokens, F.grid_sample. Truth: torch's real forward (the rows' shapes) and
autograd (the input pixels the gradient of one output unit reaches); before, each was a call
the trace could not follow (the `unfollowed` lint, no field after it)."""

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


FLIPS = {
    "torch.flip": lambda y: torch.flip(y, (2, 3)),
    "Tensor.flip": lambda y: y.flip(3),
    "Tensor.flip(2, 3)": lambda y: y.flip(2, 3),
    "dims=[-2]": lambda y: torch.flip(y, dims=[-2]),
    "fliplr (channels)": torch.fliplr,
    "flipud (batch)": torch.flipud,
}


@pytest.mark.parametrize("how", sorted(FLIPS))
def test_a_flip_keeps_the_field_and_the_jump(how):
    """A flip reverses the positions along an axis: neighbours stay neighbours, so the conv
    after a strided one reads 3 units 2 px apart, 3 + 2·2 px, flipped or not; flipping
    channels or batch moves no position."""
    model, size = Around(FLIPS[how], *convs(stride=2)), (3, 16, 16)
    assert checked(model, size) == [("a", 3, 2), ("b", 7, 2)]
    assert widest(model, size) == 7


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


class Lines(nn.Module):
    """A text-line recogniser's sequence (CRNN): a 1×3 conv on a 1-pixel-high image, its
    height merged into the channels, (B, C, W), pooled by nn.LPPool1d(2, 2), then by
    nn.LPPool1d(3, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))
        self.p1, self.p2 = nn.LPPool1d(2, 2), nn.LPPool1d(2, 3, stride=1)

    def forward(self, x):
        return self.p2(self.p1(self.a(x).flatten(1, 2)))


def test_lp_pool1d_is_a_window_along_the_last_axis():
    """2 + 1 px at spacing 2 after the first pool, then three of those units: 4 + 2·2; the
    middle output position's gradient reaches 8 columns."""
    model, size = Lines(), (3, 1, 16)
    assert checked(model, size) == [("a", 3, 1), ("p1", 4, 2), ("p2", 8, 2)]
    torch.manual_seed(0)
    x = torch.randn(1, *size, requires_grad=True)
    out = model(x)
    out[0, :, out.shape[2] // 2].sum().backward()
    assert span(x.grad[0].abs().sum(0) > 0) == (1, 8)


INTERLEAVES = {
    "height and width": lambda y: y.repeat_interleave(2, dim=2).repeat_interleave(2, 3),
    "torch.repeat_interleave": lambda y: torch.repeat_interleave(
        torch.repeat_interleave(y, 2, dim=-1), repeats=2, dim=-2
    ),
}


@pytest.mark.parametrize("how", sorted(INTERLEAVES))
def test_repeat_interleave_along_the_map_is_nearest_upsampling(how):
    """Each unit of a stride-2 conv (3 px, 2 apart) repeated twice along height and width:
    units a pixel apart, the 3×3 conv after them reads 3 of them, two of the strided units:
    3 + 2 px, as after F.interpolate(scale_factor=2) (nearest)."""
    model, size = Around(INTERLEAVES[how], *convs(stride=2)), (3, 16, 16)
    assert checked(model, size) == [("a", 3, 2), ("b", 5, 1)]
    assert widest(model, size) == 5
    nearest = Around(lambda y: F.interpolate(y, scale_factor=2.0), *convs(stride=2))
    assert checked(nearest, size) == [("a", 3, 2), ("b", 5, 1)]


def test_repeat_interleave_along_channels_moves_no_position():
    model = Around(lambda y: torch.repeat_interleave(y, 2, dim=1), *convs(stride=2, c=8))
    assert checked(model, (3, 16, 16)) == [("a", 3, 2), ("b", 7, 2)]
    assert widest(model, (3, 16, 16)) == 7


def test_gather_along_channels_moves_no_position():
    """y.gather(1, index): each value from another channel at its own position."""

    def call(y):
        order = torch.arange(y.shape[1] - 1, -1, -1, device=y.device)
        return y.gather(1, order[None, :, None, None].expand_as(y))

    model = Around(call, *convs(stride=2))
    assert checked(model, (3, 16, 16)) == [("a", 3, 2), ("b", 7, 2)]
    assert widest(model, (3, 16, 16)) == 7


class Masked(nn.Module):
    """A masked autoencoder's encoder input: a 3×3 conv's tokens, a random quarter of them
    kept (torch.gather along the tokens with argsort of noise), a linear map of each."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 4)

    def forward(self, x):
        t = self.a(x).flatten(2).transpose(1, 2)  # (B, L, C)
        keep = torch.argsort(torch.rand(t.shape[0], t.shape[1], device=t.device), 1)
        keep = keep[:, : t.shape[1] // 4, None].expand(-1, -1, t.shape[2])
        return self.fc(torch.gather(t, 1, keep))


def test_a_random_gather_of_tokens_may_read_any_position():
    """Which token lands first is chosen at random: over draws, output token 0 reads pixels
    all over the image (one draw: the 3×3 field of the token drawn), so its field is the
    whole image."""
    reads_any_token(Masked())


def reads_any_token(model: nn.Module) -> None:
    """On an 8×8 image, the summary follows `model` (torch's shapes, no unfollowed call) and
    gives its output the whole image's field; over 40 random draws its first output token
    reads one token's 3×3 field (2×3 at an edge) each time, all 8×8 pixels in all."""
    size = (3, 8, 8)
    s = summary(model, size)
    assert [w for w in s.warnings if w.code == "unfollowed"] == []
    assert [(r.name, r.output_shape) for r in s.rows] == real_shapes(model, size)
    assert s.rows[-1].receptive_field >= 8
    seen = torch.zeros(8, 8, dtype=torch.bool)
    for seed in range(40):
        torch.manual_seed(seed)
        x = torch.randn(1, *size, requires_grad=True)
        model(x)[0, 0].sum().backward()
        one = x.grad[0].abs().sum(0) > 0
        assert max(span(one)) <= 3
        seen |= one
    assert span(seen) == (8, 8)


class Sampled(nn.Module):
    """A 3×3 conv, F.grid_sample on an affine grid (a spatial transformer; here each output
    reads the one point the translation in `theta` names), a 1×1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.register_buffer("theta", torch.zeros(1, 2, 3))

    def forward(self, x):
        y = self.a(x)
        grid = F.affine_grid(self.theta.expand(len(y), 2, 3), list(y.shape), align_corners=False)
        return self.b(F.grid_sample(y, grid, align_corners=False))


def test_grid_sample_may_read_anywhere_in_the_input():
    """Where the grid points is the model's to choose (a localisation net's): over grids
    moved to every part of the map, one output unit reads pixels across the whole image."""
    model, size = Sampled(), (3, 16, 16)
    s = summary(model, size)
    assert [w for w in s.warnings if w.code == "unfollowed"] == []
    assert [(r.name, r.output_shape) for r in s.rows] == real_shapes(model, size)
    assert s.rows[-1].receptive_field >= 16
    seen = torch.zeros(16, 16, dtype=torch.bool)
    for dy in (-1.0, 1.0):
        for dx in (-1.0, 1.0):
            model.theta[0, :, 2] = torch.tensor([dx, dy])
            seen |= extent(model, size)
    assert span(seen) == (16, 16)
