"""nn.MultiheadAttention's row carries all its parameters: its forward reads out_proj's
weight and bias (F.multi_head_attention_forward) and never calls the child, so out_proj has
no row, and the attention's row showed in_proj's alone: the rows' parameters summed to less
than the model's. Truth: sum(p.numel()) of torch's parameters, per module and in all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import summary


class Net(nn.Module):
    def __init__(self, batch_first: bool, kdim: int | None = None) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        self.keys = nn.Conv2d(3, kdim or 16, 3, 2, 1)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=batch_first, kdim=kdim, vdim=kdim)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        q, k = self.conv(x).flatten(2), self.keys(x).flatten(2)  # (B, C, N)
        order = (0, 2, 1) if self.batch_first else (2, 0, 1)
        q, k = q.permute(*order), k.permute(*order)
        a = self.attn(q, k, k)[0]
        return self.head(a.mean(1 if self.batch_first else 0))


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 24])
def test_the_attention_row_carries_out_proj(batch_first, kdim):
    model = Net(batch_first, kdim).eval()
    s = summary(model, (3, 16, 16))
    (attn,) = [r for r in s.rows if r.name == "attn"]
    assert attn.params == attn.trainable == sum(p.numel() for p in model.attn.parameters())
    assert not [r for r in s.rows if r.name == "attn.out_proj"]  # never called: no row
    total = sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in s.rows) == s.total_params == total  # none counted twice


def test_a_frozen_out_proj_is_counted_frozen():
    model = Net(True).eval()
    model.attn.out_proj.requires_grad_(False)
    s = summary(model, (3, 16, 16))
    (attn,) = [r for r in s.rows if r.name == "attn"]
    frozen = sum(p.numel() for p in model.attn.out_proj.parameters())
    assert attn.trainable == attn.params - frozen
    assert s.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_an_attention_called_twice_carries_them_on_each_row():
    class Twice(Net):
        def forward(self, x):
            q = self.conv(x).flatten(2).transpose(1, 2)
            q = self.attn(q, q, q)[0]
            return self.head(self.attn(q, q, q)[0].mean(1))

    model = Twice(True).eval()
    s = summary(model, (3, 16, 16))
    attn = [r.params for r in s.rows if r.name == "attn"]
    assert attn == [sum(p.numel() for p in model.attn.parameters())] * 2
    assert s.total_params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model(torch.zeros(1, 3, 16, 16))  # (the model runs as summarized)
