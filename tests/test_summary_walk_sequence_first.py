"""Sequence-first layouts as practitioners write them: nn.LSTM / nn.GRU with the default
batch_first=False, nn.MultiheadAttention and nn.TransformerEncoderLayer over a conv map's
positions as (H·W, B, C), a CRNN's columns permuted to (W, B, C) and read by a Linear. Their
outputs are (T, B, F): a row shows one image's output, torch's shape without the batch
axis, wherever it is; summary dropped axis 0, the sequence, and showed (B, F) = (1, F), so
activation bytes lost a factor T. Truth: torch's own shapes by forward hooks on the real
model, the batch axis the one whose size follows the batch (a forward of 1 and of 2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab import summary


class Recurrent(nn.Module):
    """A CRNN: conv columns (W, B, C·H), a recurrent layer, a Linear per column."""

    def __init__(self, cell: type) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, 1, 1)
        self.pool = nn.MaxPool2d(2)
        self.rnn = cell(8 * 4, 16, bidirectional=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(32, 11)

    def forward(self, x):
        f = self.pool(self.conv(x))
        b, c, h, w = f.shape
        o, _ = self.rnn(f.permute(3, 0, 1, 2).reshape(w, b, c * h))
        return self.fc(self.drop(o))  # (W, B, classes): CTC's layout


class Attention(nn.Module):
    """Self-attention over a conv map's positions, sequence-first: (H·W, B, C)."""

    def __init__(self, layer: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        if layer:
            self.attn = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)
        else:
            self.attn = nn.MultiheadAttention(16, 2)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        t = self.conv(x).flatten(2).permute(2, 0, 1)  # (N, B, C)
        a = (
            self.attn(t)
            if isinstance(self.attn, nn.TransformerEncoderLayer)
            else self.attn(t, t, t)[0]
        )
        return self.head(self.norm(a).mean(0))


class Columns(nn.Module):
    """A CRNN without a recurrent layer: a Linear reads the (W, B, C) columns."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d((1, None))
        self.fc = nn.Linear(8, 5)
        self.act = nn.LogSoftmax(-1)

    def forward(self, x):
        f = self.pool(self.conv(x)).squeeze(2)  # (B, C, W)
        return self.act(self.fc(f.permute(2, 0, 1)))  # (W, B, 5)


def per_image_shapes(model: nn.Module, size: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each module call's output, torch's, without the axis whose size is the batch's."""
    seen: dict[int, list[tuple[str, torch.Size]]] = {1: [], 2: []}

    def hook(name: str, batch: int):
        def record(_m, _i, out) -> None:
            out = out if isinstance(out, torch.Tensor) else out[0]
            seen[batch].append((name, out.shape))

        return record

    for batch in (1, 2):
        handles = [m.register_forward_hook(hook(n, batch)) for n, m in model.named_modules() if n]
        with torch.no_grad():
            model(torch.randn(batch, *size))
        for h in handles:
            h.remove()
    found = {}
    for (name, one), (_, two) in zip(seen[1], seen[2], strict=True):
        (axis,) = [i for i, (a, b) in enumerate(zip(one, two, strict=True)) if a != b]
        found[name] = tuple(n for i, n in enumerate(one) if i != axis)
    return found


CASES = {
    "lstm": (lambda: Recurrent(nn.LSTM), (1, 8, 24)),
    "gru": (lambda: Recurrent(nn.GRU), (1, 8, 24)),
    "multihead-attention": (lambda: Attention(layer=False), (3, 12, 12)),
    "encoder-layer": (lambda: Attention(layer=True), (3, 12, 12)),
    "columns-linear": (lambda: Columns(), (1, 8, 20)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rows_show_one_images_output_where_the_batch_is_not_first(case):
    make, size = CASES[case]
    model = make().eval()
    truth = per_image_shapes(model, size)
    s = summary(model, size)
    rows = {r.name: r.output_shape for r in s.rows if r.name in truth}
    assert rows == {n: truth[n] for n in rows}
    assert len(rows) >= 4


@pytest.mark.parametrize("case", list(CASES))
def test_activation_bytes_count_every_row_at_its_whole_length(case):
    make, size = CASES[case]
    model = make().eval()
    s = summary(model, size)
    truth = per_image_shapes(model, size)
    named = {r.name for r in s.rows}
    assert named <= set(truth) | {""}
    values = sum(math.prod(truth[r.name]) for r in s.rows if r.name)
    values += sum(math.prod(r.output_shape) for r in s.rows if not r.name)  # (batch first)
    assert s.activation_bytes == 4 * values


def test_an_image_layout_keeps_axis_0_as_the_batch():
    """Control: a (B, T, F) batch_first recurrent layer, as before."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(8, 6, batch_first=True)

        def forward(self, x):
            return self.rnn(x[:, 0])[0]  # (B, H, W) read as H steps of W

    s = summary(Net().eval(), (1, 5, 8))
    assert [r.output_shape for r in s.rows if r.name == "rnn"] == [(5, 6)]
