"""summary on what more of MONAI's 2-D networks do: QuickNAT's and SegNet's max unpooling,
V-Net's Dropout3d on 2-D maps. Truths: the fields of a transposed conv of the same kernel
and stride (itself checked against autograd in test_summary_products.py), and torch's own
forward shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary


class Unpooled(nn.Module):
    """A 3×3 conv, a 2×2/2 max pool that keeps its indices, the unpooling back (or a
    transposed conv of the pool's kernel and stride in its place) and a 3×3 conv."""

    def __init__(self, up: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.up = nn.MaxUnpool2d(2, 2) if up == "unpool" else nn.ConvTranspose2d(4, 4, 2, 2)
        self.after = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y, indices = self.pool(self.conv(x))
        y = self.up(y, indices) if isinstance(self.up, nn.MaxUnpool2d) else self.up(y)
        return self.after(y)


def _fields(model, size):
    s = summary(model, size)
    return [(r.name, r.output_shape, r.receptive_field, r.jump) for r in s.rows], s.warnings


def test_max_unpooling_gives_the_fields_of_a_transposed_conv_of_its_window():
    """Each pooled unit goes back to one pixel of its 2×2 window, so a pixel reads the one
    unit whose window covers it, as a 2×2/2 transposed conv's: field 4 (3×3 then 2×2/2),
    spacing back to 1, and 4 + 2 after the last 3×3. Before, the unpooling was an unfollowed
    call and the rows after it had no field."""
    size = (3, 16, 16)
    unpooled, warnings = _fields(Unpooled("unpool"), size)
    transposed, _ = _fields(Unpooled("tconv"), size)
    assert warnings == []
    assert [row[2:] for row in unpooled] == [row[2:] for row in transposed]
    assert unpooled[-1][2:] == (6, 1)


@pytest.mark.parametrize("dropout", [nn.Dropout3d, nn.functional.dropout3d])
def test_dropout3d_on_a_map_keeps_every_field(dropout):
    """V-Net's blocks (MONAI, spatial_dims=2 with its default dropout_dim=3) put a Dropout3d
    on (B, C, H, W) maps: identity at inference, so two 3×3 convs around it see 5 px."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)
            self.drop = nn.Dropout3d(0.5) if dropout is nn.Dropout3d else None

        def forward(self, x):
            y = self.a(x)
            y = self.drop(y) if self.drop is not None else dropout(y, 0.5, training=False)
            return self.b(y)

    rows, warnings = _fields(Net().eval(), (3, 12, 12))
    assert warnings == [] and rows[-1][1:] == ((4, 8, 8), 5, 1)
    with torch.no_grad():
        assert Net().eval()(torch.zeros(1, 3, 12, 12)).shape[1:] == rows[-1][1]


class Decoder(nn.Module):
    """A variational autoencoder's path, as MONAI's VarAutoEncoder: a 3×3/2 conv, flattened
    into a Linear (the code), a Linear back and `.view` into a 4×8×8 map, a 3×3 conv and a
    2×2/2 transposed conv to the image's size."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.code = nn.Conv2d(1, 4, 3, 2, 1), nn.Linear(4 * 8 * 8, 8)
        self.dec, self.conv = nn.Linear(8, 4 * 8 * 8), nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 1, 2, 2)

    def forward(self, x):
        y = self.dec(self.code(self.enc(x).flatten(1))).view(-1, 4, 8, 8)
        return self.up(self.conv(y))


def test_a_map_made_from_a_linear_layers_features_sees_the_whole_image():
    """Every unit of the decoded map depends on every pixel (autograd: one output pixel's
    gradient reaches all 256), so the rows after the `.view` have fields of at least the
    image, units spaced as tiles of it (16 px / 8 = 2, a pixel after the 2×2/2 upsampling).
    Before, the conv after the view was an unfollowed call and both rows had no field."""
    model, size = Decoder(), (1, 16, 16)
    rows, warnings = _fields(model, size)
    assert "unfollowed" not in {w.code for w in warnings}
    assert [row[2:] for row in rows[-2:]] == [(17 + 2 * 2, 2), (21, 1)]
    x = torch.randn(1, *size, requires_grad=True)
    model(x)[0, 0, 0, 0].backward()
    assert bool((x.grad != 0).all())


class Rolled(nn.Module):
    """A 3×3 conv, a cyclic shift of its map by one pixel down and right (Swin's shifted
    windows, SwinUNETR's torch.roll) and a 3×3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.b(torch.roll(self.a(x), shifts=(1, 1), dims=(2, 3)))


def test_a_rolled_map_has_fields_as_wide_as_the_window_across_its_seam_reads():
    """At the seam the roll makes, the last conv reads units from both ends of the map, so
    the input pixels a unit there reads span the whole 12-px map (autograd: the gradient of
    the unit that sits on the seam). The trace takes every field to span its units', 3 +
    11·1, and 2 more for the conv after. Before, torch.roll was an unfollowed call."""
    model, size = Rolled(), (3, 12, 12)
    rows, warnings = _fields(model, size)
    assert "unfollowed" not in {w.code for w in warnings}
    assert rows[-1][2:] == (3 + 11 + 2, 1)
    x = torch.randn(1, *size, requires_grad=True)
    model(x)[0, :, 1, 1].sum().backward()  # reads rolled rows 0-2: map rows 11, 0 and 1
    seen = (x.grad[0].abs().sum(0) > 0).any(1).nonzero()
    assert int(seen.max() - seen.min() + 1) == 12
