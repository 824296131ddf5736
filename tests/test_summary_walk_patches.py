"""Patches cut by hand with Tensor.unfold, as practitioners write a ViT's patch embedding or
a local-window block without nn.Unfold: `x.unfold(2, p, p).unfold(3, p, p)`, then a permute
and a reshape into tokens, or a Linear over each window's pixels. Each window position sees
its window (a window of p at stride s, geometry.rf_step's formula); it was 'unfollowed'.
Truth: autograd's extent of a unit and the step between two neighbours'."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import summary


class LocalMix(nn.Module):
    """A conv, windows of k at stride s mixed by a Linear per window, a conv on the grid."""

    def __init__(self, k: int, s: int) -> None:
        super().__init__()
        self.k, self.s = k, s
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Linear(4 * k * k, 8)
        self.out = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        p = self.conv(x).unfold(2, self.k, self.s).unfold(3, self.k, self.s)  # B C h w k k
        b, c, h, w = p.shape[:4]
        t = self.mix(p.permute(0, 2, 3, 1, 4, 5).reshape(b, h, w, c * self.k * self.k))
        return self.out(t.permute(0, 3, 1, 2))


def reach(model: nn.Module, size: int, unit: int) -> tuple[int, int]:
    """(first row, extent) of the input rows that reach output unit (unit, unit), by autograd."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    model(x)[0, 0, unit, unit].backward()
    rows = x.grad[0].abs().sum((0, 2)).gt(0).nonzero()[:, 0]
    return int(rows.min()), int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize(("k", "s"), [(4, 4), (4, 2), (3, 2)])
def test_windows_cut_by_hand_are_windows(k, s):
    model = LocalMix(k, s).eval()
    summ = summary(model, (3, 24, 24))
    assert not [w for w in summ.warnings if w.code == "unfollowed"], summ.warnings
    rows = {r.name: (r.receptive_field, r.jump) for r in summ.rows}
    assert rows["mix"] == (2 + k, s)  # the conv's 3 px, a window of k of them at stride s
    n = summ.rows[-1].output_shape[-1]
    (a, extent), (b, _) = reach(model, 24, n // 2), reach(model, 24, n // 2 + 1)
    assert rows["out"] == (extent, b - a)


class PatchEmbedding(nn.Module):
    """ViT's patch embedding without a conv: 4×4 patches flattened into tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        p = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, 3, 8, 8, 4, 4)
        t = p.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)  # (B, 64, 48)
        return self.head(self.proj(t).mean(1))


def test_a_patch_embeddings_tokens_see_their_patch():
    s = summary(PatchEmbedding().eval(), (3, 32, 32))
    rows = {r.name: (r.receptive_field, r.jump) for r in s.rows}
    assert rows["proj"][0] == 4  # one token: its 4×4 patch
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    model = PatchEmbedding().eval()
    p = x.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)
    model.proj(p)[0, 9, 0].backward()  # token 9: row 1, column 1
    assert int(x.grad[0].abs().sum((0, 2)).gt(0).sum()) == 4
    assert s.rows[-1].receptive_field >= 32  # the mean over tokens: the whole image
