"""nn.MultiheadAttention as practitioners use it: self-attention over a conv map's positions
(batch_first or sequence-first), an attention-pooling head whose one learned query reads
all tokens (SigLIP's, a cross-attention), need_weights on or off. Its projections are
weights per token: q and out_proj (E·E + E) per query token, k and v (E·kdim + E,
E·vdim + E) per key token; summary counted none of them (out_proj is a child its forward
never calls, and the module was no leaf), and torchinfo's total counts none either (it
sums leaves). QKᵀ and the weighted sum of V multiply activations: uncounted, as for a
transformer of Linear layers. Truth: the formula; torchinfo's per-layer count, for
self-attention."""

from __future__ import annotations

import pytest
import torch
import torchinfo
from torch import nn

from cnnlab import summary


class SelfAttention(nn.Module):
    def __init__(self, batch_first: bool, need_weights: bool) -> None:
        super().__init__()
        self.batch_first, self.need_weights = batch_first, need_weights
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=batch_first)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        t = self.conv(x).flatten(2)  # (B, C, N)
        t = t.transpose(1, 2) if self.batch_first else t.permute(2, 0, 1)
        a, _ = self.attn(t, t, t, need_weights=self.need_weights)
        return self.head(a.mean(1 if self.batch_first else 0))


def projections(e: int, queries: int, keys: int, kdim: int | None = None) -> int:
    kdim = kdim or e
    return (e * e + e) * 2 * queries + (e * kdim + e) * 2 * keys


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_self_attention_counts_its_projections_per_token(batch_first, need_weights):
    model = SelfAttention(batch_first, need_weights).eval()
    (attn,) = [r for r in summary(model, (3, 16, 16)).rows if r.name == "attn"]
    tokens = 8 * 8
    assert attn.macs == projections(16, tokens, tokens)
    if batch_first:  # torchinfo's row (not in its total) for a (B, L, E) output
        info = torchinfo.summary(model, input_size=(1, 3, 16, 16), verbose=0)
        assert attn.macs == next(x.macs for x in info.summary_list if x.var_name == "attn")


class AttentionPool(nn.Module):
    """One learned query reads every position (SigLIP's MAP head); keys of another width."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 24, 3, 2, 1)
        self.probe = nn.Parameter(torch.randn(1, 1, 16))
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True, kdim=24, vdim=24)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, N, 24)
        q = self.probe.expand(x.shape[0], -1, -1)
        return self.head(self.attn(q, t, t)[0][:, 0])


def test_a_pooling_query_counts_its_keys_at_their_length():
    (attn,) = [r for r in summary(AttentionPool().eval(), (3, 16, 16)).rows if r.name == "attn"]
    assert attn.macs == projections(16, 1, 64, kdim=24)


class WindowAttention(nn.Module):
    """Attention inside each of four 4×4 windows of an 8×8 map, the windows folded into the
    batch (Swin's layout, written with nn.MultiheadAttention): (B·4, 16, E)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        t = self.conv(x)  # (B, 16, 8, 8)
        b = t.shape[0]
        t = t.reshape(b, 16, 2, 4, 2, 4).permute(0, 2, 4, 3, 5, 1).reshape(b * 4, 16, 16)
        return self.head(self.attn(t, t, t)[0].reshape(b, 64, 16).mean(1))


def test_a_window_attention_counts_the_keys_of_every_window():
    """Each window's 16 keys, four windows: 64 key tokens, as many as the queries (the key
    length of one window alone counted a quarter of k and v)."""
    (attn,) = [r for r in summary(WindowAttention().eval(), (3, 16, 16)).rows if r.name == "attn"]
    assert attn.macs == projections(16, 64, 64)
