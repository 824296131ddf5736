"""The receptive field after an upsampling by S (nn.Upsample / F.interpolate nearest, a pixel
shuffle, a transposed conv of kernel = stride, nn.Fold of kernel = stride: a segmenter's patch
un-embedding) and a conv after it. Neighbouring positions share an input unit in blocks of S,
so a window that straddles a block's edge reads one more input unit than its taps spaced
jump / S apart suggest: Fold 4/4 then a 3×3 conv reads 2 patches, 8 px (the trace said 6).
Truth: autograd's extent along the rows of every output unit of the middle column (a real
forward and backward, float64, no nonlinearity: nothing zeroes a path); the summary reports
the largest (the corner's and the middle's are at most that)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def extents(model: nn.Module, size: int) -> tuple[list[int], int]:
    """(extent along the rows of output unit (o, middle column), for every row o; that of
    the corner unit (0, 0)), by autograd."""
    model = model.double()
    x0 = torch.randn(1, 1, size, size, dtype=torch.float64)
    out = model(x0)
    n, mid = out.shape[-2], out.shape[-1] // 2

    def extent(o: int, c: int) -> int:
        x = x0.clone().requires_grad_(True)
        model(x)[0, 0, o, c].backward()
        rows = x.grad[0, 0].abs().sum(1).gt(0).nonzero()[:, 0]
        return int(rows.max() - rows.min() + 1)

    return [extent(o, mid) for o in range(n)], extent(0, 0)


def check(model: nn.Module, size: int) -> None:
    """The summary's field of the last row is the largest extent; the corner's is at most it."""
    torch.manual_seed(0)
    field = summary(model, (1, size, size)).rows[-1].receptive_field
    along, corner = extents(model, size)
    assert (field, corner <= field, along[len(along) // 2] <= field) == (max(along), True, True)


class Upsampled(nn.Module):
    """A conv of stride S (3 px, S px apart), an upsampling by S, then the convs `after`."""

    def __init__(self, s: int, up: nn.Module, *after: nn.Module) -> None:
        super().__init__()
        self.down, self.up, self.after = nn.Conv2d(1, 1, 3, stride=s), up, nn.Sequential(*after)

    def forward(self, x):
        return self.after(self.up(self.down(x)))


class Interpolated(nn.Module):
    """F.interpolate in a forward, as segmentation heads write it."""

    def __init__(self, s: int, mode: str = "nearest", corners: bool | None = None) -> None:
        super().__init__()
        self.s, self.mode, self.corners = s, mode, corners

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.s, mode=self.mode, align_corners=self.corners)


class Shuffled(nn.Module):
    """A conv to S² channels, then F.pixel_shuffle by S (depth to space)."""

    def __init__(self, s: int) -> None:
        super().__init__()
        self.conv, self.s = nn.Conv2d(1, s * s, 1), s

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), self.s)


class Unembedded(nn.Module):
    """Patch embedding (a P×P conv of stride P), the tokens (B, C·P·P, L), nn.Fold P/P back
    to the image's grid (a segmenter's head), then a k×k conv."""

    def __init__(self, p: int, k: int, size: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, p * p, p, stride=p)
        self.fold = nn.Fold((size, size), p, stride=p)
        self.conv = nn.Conv2d(1, 1, k, padding=k // 2)

    def forward(self, x):
        return self.conv(self.fold(self.embed(x).flatten(2)))


def test_fold_4_by_4_then_a_3x3_conv_reads_two_patches():
    check(Unembedded(4, 3, 32), 32)  # 8 px: the trace said 4 + 2 = 6


@pytest.mark.parametrize("s", [3, 4])
@pytest.mark.parametrize("form", ["Upsample", "interpolate", "pixel_shuffle", "ConvTranspose2d"])
def test_a_3x3_conv_after_an_upsampling_by_3_or_4(form, s):
    up = {
        "Upsample": lambda: nn.Upsample(scale_factor=s),
        "interpolate": lambda: Interpolated(s),
        "pixel_shuffle": lambda: Shuffled(s),
        "ConvTranspose2d": lambda: nn.ConvTranspose2d(1, 1, s, stride=s),
    }[form]()
    check(Upsampled(s, up, nn.Conv2d(1, 1, 3, padding=1)), 16 * s)


@pytest.mark.parametrize("s", [2, 4])
def test_an_even_kernel_after_a_bilinear_upsampling(s):
    """Bilinear by an even S reads 2 input units everywhere, in blocks of S; a 2×2 conv
    after ×2 reads 3 units, not 2.5."""
    check(Upsampled(s, Interpolated(s, "bilinear"), nn.Conv2d(1, 1, 2)), 16 * s)


@pytest.mark.parametrize("k", [2, 3])
def test_a_conv_after_a_bilinear_upsampling_by_3(k):
    """Bilinear by 3 puts every third output on an input (its neighbour weighs 0): a 2×2
    conv after it reads 2 units (the trace said 2⅓), a 3×3 conv 3 (it said 2⅔)."""
    check(Upsampled(3, Interpolated(3, "bilinear"), nn.Conv2d(1, 1, k)), 48)


@pytest.mark.parametrize("k", [2, 3])
def test_a_conv_after_a_bicubic_upsampling_by_3(k):
    """Bicubic by 3 puts every third output on an input (the cubic kernel is 0 at the other
    whole offsets): a 2×2 conv after it reads 4 units (the trace said 4⅓, 13 px: 12), a 3×3
    conv 5 (it said 4⅔, 14 px: 15)."""
    check(Upsampled(3, Interpolated(3, "bicubic"), nn.Conv2d(1, 1, k)), 48)


@pytest.mark.parametrize(
    ("s", "mode", "k", "stride"),
    [(3, "bilinear", 2, 1), (3, "bilinear", 2, 2), (5, "bilinear", 2, 1), (3, "bicubic", 2, 1)],
)
def test_a_conv_after_an_upsampling_with_align_corners(s, mode, k, stride):
    """align_corners puts output o at input o·(n − 1)/(S·n − 1), a little less than o/S and
    never again on the grid of S: bilinear ×3 then a 2×2 conv reads 3 units, 9 px, where
    the half-pixel rule reads 2 (the trace said 6)."""
    up = Interpolated(s, mode, corners=True)
    check(Upsampled(s, up, nn.Conv2d(1, 1, k, stride=stride)), 16 * s + 1)


@pytest.mark.parametrize("transposed", [False, True])
def test_a_second_upsampling_after_a_stride(transposed):
    """Conv 4/4, nearest ×2, a 3×3 conv of stride 3, ×2 again, a 3×3 conv: the last conv's
    3 positions read 2 positions of the stride's, 3 + 3 of the first ×2, 4 units of 4 px,
    16 px (the trace spaced the second upsampling evenly: 14)."""
    up = nn.ConvTranspose2d(1, 1, 2, stride=2) if transposed else nn.Upsample(scale_factor=2)
    model = nn.Sequential(
        nn.Conv2d(1, 1, 4, stride=4),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(1, 1, 3, stride=3, padding=1),
        up,
        nn.Conv2d(1, 1, 3, padding=1),
    )
    check(model, 96)


def test_a_chain_of_windows_after_an_upsampling_counts_blocks_once():
    """×4, then 2×2 twice: positions u .. u + 2 read 2 units (3 if each window rounded up)."""
    check(Upsampled(4, nn.Upsample(scale_factor=4), nn.Conv2d(1, 1, 2), nn.Conv2d(1, 1, 2)), 64)


def test_two_upsamplings_are_one_by_their_product():
    """×2 twice is ×4: a 3×3 conv after reads 2 units of the coarse map."""
    up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2))
    check(Upsampled(4, up, nn.Conv2d(1, 1, 3, padding=1)), 64)


class Dense(nn.Module):
    """Nearest ×4, then three dense layers: x = cat([x, conv(x)]) (a (3, 1) conv), a 1×1 conv
    over all channels (AHNet's decoder, DenseNet's blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.up = nn.Conv2d(1, 1, 3, stride=4), nn.Upsample(scale_factor=4)
        self.convs = nn.ModuleList(nn.Conv2d(1 + i, 1, (3, 1), padding=(1, 0)) for i in range(3))
        self.out = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        x = self.up(self.down(x))
        for conv in self.convs:
            x = torch.cat([x, conv(x)], 1)
        return self.out(x)


def test_a_dense_block_after_an_upsampling_keeps_each_layers_reach():
    """The concatenation reads what x and conv(x) read: three (3, 1) convs reach 6 positions,
    2 more units (the trace took x's field, as large, and lost the convs' reach)."""
    check(Dense(), 64)


@settings(max_examples=40, deadline=None)
@given(
    s=st.integers(2, 4),
    k=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 2),
    pad=st.integers(0, 2),
    second=st.integers(1, 3),
)
def test_any_window_after_a_nearest_upsampling(s, k, stride, dilation, pad, second):
    """A conv of any kernel, stride, dilation and padding after nearest ×S, then a second
    conv: blocks of S, fewer or none after the stride."""
    conv = nn.Conv2d(1, 1, k, stride=stride, dilation=dilation, padding=min(pad, k // 2))
    check(Upsampled(s, nn.Upsample(scale_factor=s), conv, nn.Conv2d(1, 1, second)), 16 * s)


@settings(max_examples=30, deadline=None)
@given(
    s1=st.integers(2, 3),
    k=st.integers(1, 4),
    stride=st.integers(2, 4),
    s2=st.integers(2, 3),
    transposed=st.booleans(),
    last=st.integers(1, 4),
)
def test_any_stride_between_two_upsamplings(s1, k, stride, s2, transposed, last):
    """Nearest ×S₁, a conv of any kernel and stride, ×S₂ (nearest or a transposed conv),
    then a conv: the blocks of the first upsampling, sampled by the stride, in blocks of S₂."""
    d = s1 * s2
    up = nn.ConvTranspose2d(1, 1, s2, stride=s2) if transposed else nn.Upsample(scale_factor=s2)
    model = nn.Sequential(
        nn.Conv2d(1, 1, d, stride=d),
        nn.Upsample(scale_factor=s1),
        nn.Conv2d(1, 1, k, stride=stride, padding=k // 2),
        up,
        nn.Conv2d(1, 1, last),
    )
    check(model, 8 * d * stride)
