"""cnnlab.summary's receptive fields through calls that sum over an axis of two maps or move
pixels between positions and channels (products.py): attention written as matmuls and as
F.scaled_dot_product_attention, F.unfold / F.fold, norms over given dims, adaptive 1-D
pooling of tokens, torch.as_tensor. Truth: autograd, the input pixels the gradient of one
output unit reaches (the extent of its field inside the image)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def gradient_extent(model: nn.Module, size: tuple[int, int, int], shift: int = 0) -> tuple:
    """(height, width) of the input pixels the centre unit of the model's (B, C, H, W)
    output reads (moved by `shift` units down and right): the rows and columns where its
    gradient is not zero."""
    torch.manual_seed(0)
    x = torch.randn(1, *size, requires_grad=True)
    out = model(x)
    out[0, :, out.shape[2] // 2 + shift, out.shape[3] // 2 + shift].sum().backward()
    seen = x.grad[0].abs().sum(0) > 0  # (H, W)
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def field(model: nn.Module, size) -> tuple[int, int, list]:
    """The last row's field and jump, and the lints."""
    s = summary(model, size)
    return s.rows[-1].receptive_field, s.rows[-1].jump, s.warnings


class Attention(nn.Module):
    """A 3×3 conv, then single-head self-attention over its positions (as matmuls, as
    F.scaled_dot_product_attention or nn.MultiheadAttention), back to a map, a 3×3 conv."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.after = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        y = self.stem(x)  # (B, 8, H, W)
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)  # (B, H·W, 8)
        q, k, v = self.q(t), self.k(t), self.v(t)
        if self.kind == "mha":
            a = self.mha(q, k, v)[0]
        elif self.kind == "sdpa":
            a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        else:
            a = torch.softmax(q @ k.transpose(-2, -1) / c**0.5, dim=-1).matmul(v)
        return self.after(a.transpose(1, 2).reshape(b, c, h, w))


@pytest.mark.parametrize("kind", ["matmul", "sdpa", "mha"])
def test_attention_makes_each_unit_see_the_whole_input(kind):
    model, size = Attention(kind).eval(), (3, 12, 12)
    s = summary(model, size)
    rows = {r.name: r.receptive_field for r in s.rows}
    assert (rows["stem"], rows["q"], rows["k"], rows["v"]) == (3, 3, 3, 3)
    assert rows["after"] >= 12 and gradient_extent(model, size) == (12, 12)
    assert s.warnings == []  # followed: no unfollowed lint, no rows without a field


class Patches(nn.Module):
    """MobileViTV2's layout: F.unfold into 2×2 patches, 1×1 convs over (patch pixel, patch)
    axes (`keep`) and over each patch's values (`mix`), F.fold back, a 3×3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.keep = nn.Conv2d(4, 4, 1)
        self.mix = nn.Conv2d(16, 16, 1)
        self.after = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.stem(x)  # (B, 4, H, W)
        b, c, h, w = y.shape
        p = F.unfold(y, kernel_size=2, stride=2)  # (B, 4·2·2, H·W/4)
        p = self.keep(p.reshape(b, c, 4, -1)).reshape(b, c * 4, -1, 1)  # (B, 16, L, 1)
        p = self.mix(F.relu(p))[..., 0]  # (B, 16, L): each value from its whole patch
        y = F.fold(p, output_size=(h, w), kernel_size=2, stride=2)  # (B, 4, H, W)
        return self.after(y)


def test_unfold_and_fold_give_the_fields_autograd_finds():
    """3×3 conv (3) → 2×2 patches (4, spacing 2) → sewn back (4, spacing 1) → 3×3 conv:
    4 + 2 = 6 (the centre pixel's conv reads two patches)."""
    model, size = Patches(), (3, 12, 12)
    rows = {r.name: (r.receptive_field, r.jump) for r in summary(model, size).rows}
    assert rows["keep"] == rows["mix"] == (4, 2)
    rf, jump, warnings = field(model, size)
    assert (rf, jump) == (6, 1) and gradient_extent(model, size) == (6, 6)
    assert warnings == []


class Norms(nn.Module):
    """A norm over channels (linalg.vector_norm(x, ord, dim), positional: its dim after ord)
    keeps the field; ConvNeXt V2's GRN, vector_norm over (H, W) of a channels-last map,
    makes it the image."""

    def __init__(self, spatial: bool) -> None:
        super().__init__()
        self.spatial = spatial
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Identity()

    def forward(self, x):
        y = self.stem(x)  # (B, 4, H, W)
        if self.spatial:
            z = y.permute(0, 2, 3, 1)  # (B, H, W, 4)
            g = torch.linalg.vector_norm(z, ord=2, dim=(1, 2), keepdim=True)
            return self.out((z * g).permute(0, 3, 1, 2))
        return self.out(y * torch.linalg.vector_norm(y, 2, 1, True))  # (B, 1, H, W)


@pytest.mark.parametrize("spatial", [False, True])
def test_a_norm_reduces_the_dims_it_is_given(spatial):
    model, size = Norms(spatial), (3, 10, 10)
    rf, _, warnings = field(model, size)
    extent = gradient_extent(model, size)
    assert extent == ((10, 10) if spatial else (3, 3))
    assert rf == 3 if not spatial else rf >= 10
    assert "unfollowed" not in {w.code for w in warnings}  # (no head: rf-small reads the norm)


class Tokens(nn.Module):
    """FocalNet's head: a (B, C, H·W) token map pooled by nn.AdaptiveAvgPool1d(1); MONAI's
    HighResNet's torch.as_tensor of a map."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(torch.as_tensor(self.stem(x)))  # (B, 4, H, W)
        return self.fc(self.pool(y.flatten(2)).flatten(1))  # (B, 4, H·W) -> (B, 4, 1)


def test_token_pooling_and_as_tensor_are_followed():
    s = summary(Tokens(), (3, 10, 10))
    rows = {r.name: r.receptive_field for r in s.rows}
    assert rows["conv"] == 5  # as_tensor: the same values
    assert rows["pool"] >= 10 and rows["fc"] >= 10
    # the pool is the head, and its 5-px units do not see the 10-px image
    assert [(w.code, w.layer) for w in s.warnings] == [("rf-small", "pool")]


def test_as_tensor_of_a_layers_output_adds_no_row():
    """MONAI's HighResNet returns torch.as_tensor(self.blocks(x)): the same tensor, still its
    last layer's output, so the model gets no row of its own (torch's hooks see none)."""

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

        def forward(self, x):
            return torch.as_tensor(self.blocks(x))

    assert [r.name for r in summary(Wrapped(), (3, 8, 8)).rows] == ["blocks.0", "blocks.1"]


class Upsampled(nn.Module):
    """A U-Net decoder's upsampling after a 3×3/2 conv (field 3, spacing 2): a transposed
    conv (kernel 2 or 3, stride 2) or F.interpolate ×2, then a 3×3 conv."""

    def __init__(self, up: str) -> None:
        super().__init__()
        self.up = up
        self.down = nn.Conv2d(3, 4, 3, 2, 1)
        self.tconv = nn.ConvTranspose2d(4, 4, 3 if up == "tconv3" else 2, 2)
        self.after = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.down(x)  # (B, 4, H/2, W/2)
        if self.up.startswith("tconv"):
            y = self.tconv(y)  # (B, 4, H, W) (+1 for a 3×3 kernel)
        else:
            y = F.interpolate(y, scale_factor=2, mode=self.up)  # (B, 4, H, W)
        return self.after(y)


@pytest.mark.parametrize(
    ("up", "expected"),
    [("tconv2", 5), ("tconv3", 7), ("nearest", 5), ("bilinear", 7), ("bicubic", 11)],
)
def test_upsampling_gives_the_fields_autograd_finds(up, expected):
    """After the 3×3/2 conv (field 3, units 2 px apart) each pixel reads one unit (nearest,
    a 2×2/2 transposed conv), two (bilinear; a 3×3/2 transposed conv's overlapping windows,
    at every other pixel) or four (bicubic); the 3×3 conv after reads three pixels: 3 + 2·1
    for one unit each. The field is the largest a unit has, as for any window."""
    model, size = Upsampled(up), (3, 16, 16)
    rf, jump, warnings = field(model, size)
    extents = [max(gradient_extent(model, size, shift)) for shift in (0, 1)]
    assert (rf, jump) == (expected, 1) and max(extents) == expected
    assert warnings == []


def test_attention_whose_only_traced_input_is_its_mask_is_named_not_raised():
    """Learned queries, keys and values and a mask made from the image: the trace follows
    no operand, so it names the call it could not follow (it raised IndexError)."""

    class MaskOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.q, self.k, self.v = (nn.Parameter(torch.randn(1, 4, 8)) for _ in range(3))
            self.out = nn.Identity()

        def forward(self, x):
            mask = self.conv(x).reshape(1, 4, 4)  # (B, L, S) from a 4×4 map
            return self.out(F.scaled_dot_product_attention(self.q, self.k, self.v, mask))

    s = summary(MaskOnly(), (1, 4, 4))
    assert [r.name for r in s.rows] == ["conv", "out"] and s.rows[1].output_shape == (4, 8)
    assert [w.code for w in s.warnings] == ["unfollowed"]
    assert "scaled_dot_product_attention" in s.warnings[0].message


class Scores(nn.Module):
    """A 4×4/4 patch stem, q and k as linear maps, the attention scores softmax(q @ kᵀ) and a
    dropout on them, as timm's classic attention writes `attn_drop`: a row of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)  # (B, N, 8)
        return self.drop((self.q(t) @ self.k(t).transpose(-2, -1)).softmax(-1))  # (B, N, N)


def test_attention_scores_read_a_query_and_every_key_so_the_whole_input():
    """q @ kᵀ keeps the queries' positions on one dim and the keys' on another; the softmax
    over keys then mixes every key. The row had the stem's 4-px field. Truth: autograd, the
    input pixels score row 36 (query 36, all keys) reads: all 32×32."""
    model, size = Scores().eval(), (3, 32, 32)
    torch.manual_seed(0)
    x = torch.randn(1, *size, requires_grad=True)
    model(x)[0, 36, 0].backward()
    seen = x.grad[0].abs().sum(0) > 0
    assert (int(seen.any(1).sum()), int(seen.any(0).sum())) == (32, 32)
    rows = {r.name: r.receptive_field for r in summary(model, size).rows}
    assert rows["stem"] == 4 and rows["drop"] >= 32


class Shuffled(nn.Module):
    """A 3×3 conv, space to depth by 2 (nn.PixelUnshuffle), a 1×1 conv mixing each 2×2
    block's values, depth to space by 2 (nn.PixelShuffle) and a 3×3 conv: an ESPCN-like
    decoder around a 2×2-block stem."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.down = nn.Conv2d(3, 4, 3, padding=1), nn.PixelUnshuffle(2)
        self.mix, self.up = nn.Conv2d(16, 16, 1), nn.PixelShuffle(2)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.up(self.mix(self.down(self.a(x)))))


def test_pixel_unshuffle_and_shuffle_give_the_fields_autograd_finds():
    """Space to depth is a 2×2/2 window for the field (the 1×1 conv after it mixes a block:
    3 + 1 px, spacing 2), depth to space puts each unit back a pixel apart, and the 3×3 conv
    reads three of them: 4 + 2 (two blocks across a block edge). Before, both were calls the
    trace could not follow."""
    model, size = Shuffled(), (3, 16, 16)
    rows = [(r.name, r.receptive_field, r.jump) for r in summary(model, size).rows]
    assert rows == [("a", 3, 1), ("down", 4, 2), ("mix", 4, 2), ("up", 4, 1), ("b", 6, 1)]
    assert max(max(gradient_extent(model, size, shift)) for shift in (0, 1)) == 6
