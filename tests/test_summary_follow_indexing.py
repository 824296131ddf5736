"""cnnlab.summary follows indexing with tensors (x[torch.arange(B)[:, None], ids]): the
picked dims become the indices' dims, and along a picked spatial axis an output may be any
position's (MONAI's masked autoencoder keeps random tokens so). Truth: torch's real forward
(shapes, where each axis lands) and autograd over random draws; before, Tensor.__getitem__
with tensors was a call the trace could not follow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.axes import advanced
from test_summary_follow_picks import reads_any_token

pytestmark = pytest.mark.usefixtures("one_thread")

B, C, H, W = 2, 3, 4, 5
KEYS = {  # key, the map's axes in x, where torch puts them (None: picked into new dims)
    "tokens picked": (lambda: (slice(None), torch.tensor([3, 0])), (1, 1), 3),
    "batch and tokens": (lambda: (torch.arange(B)[:, None], torch.zeros(B, 2).long()), (1, 1), 3),
    "channels into 2-D": (lambda: (slice(None), torch.zeros(2, 2).long()), (2, 3), 4),
    "width by a 2-D index": (lambda: (slice(None), slice(None), slice(None), [[0, 1]]), (2, 3), 4),
}


@pytest.mark.parametrize("case", sorted(KEYS))
def test_advanced_puts_the_axes_where_torch_puts_them(case):
    make, axes, ndim = KEYS[case]
    x = torch.randn(B, H * W, C) if ndim == 3 else torch.randn(B, C, H, W)
    key = make()
    out = x[key]
    new, hit = advanced(key, x.dim(), out.dim(), axes)
    for a, n, h in zip(axes, new, hit, strict=True):
        assert h == (a in [i for i, k in enumerate(key) if not isinstance(k, slice)])
        if not h:  # not picked: the same length, where torch put it
            assert out.shape[n] == x.shape[a]
        else:  # picked: in its place where as many dims came back, else gone
            assert n == (a if out.dim() == x.dim() else None)


class Kept(nn.Module):
    """A 3×3 conv's tokens, a random quarter of them kept by indexing (as MONAI's masked
    autoencoder), a linear map of each."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 4)

    def forward(self, x):
        t = self.a(x).flatten(2).transpose(1, 2)  # (B, L, C)
        ids = torch.multinomial(torch.ones(t.shape[0], t.shape[1]), t.shape[1] // 4)
        return self.fc(t[torch.arange(t.shape[0]).unsqueeze(1), ids])


def test_tokens_kept_by_indexing_may_be_any_positions():
    reads_any_token(Kept())


def test_monais_masked_autoencoder_has_a_field_on_every_row():
    """Before, 47 of its 49 rows had none (the kept tokens' indexing, then everything)."""
    nets = pytest.importorskip("monai.networks.nets")
    model = nets.MaskedAutoEncoderViT(
        in_channels=1, img_size=(32, 32), patch_size=(8, 8), spatial_dims=2, hidden_size=48,
        mlp_dim=96, num_layers=2, num_heads=4, decoder_hidden_size=48, decoder_mlp_dim=96,
        decoder_num_layers=1, decoder_num_heads=4,
    )  # fmt: skip
    s = summary(model, (1, 32, 32))
    assert [w for w in s.warnings if w.code == "unfollowed"] == []
    assert [r.name for r in s.rows if r.receptive_field is None] == []
    assert [r for r in s.rows if r.name == "blocks.0.norm1"][0].receptive_field >= 32
