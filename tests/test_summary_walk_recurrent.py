"""A CRNN as practitioners write it (OCR, audio): conv features, permuted into a sequence of
columns, an nn.LSTM or nn.GRU (bidirectional, batch_first or not, stacked), a Linear per
column and one on the last step. A recurrent layer runs its weights at every time step:
MACs = its weights and biases × T (an LSTM layer's step: 4H·(I + H) + 8H per direction, a
GRU's 3H·(I + H) + 6H), as torchinfo counts them; summary counted them once. Truth: the
formula, torchinfo, torch's own shapes."""

from __future__ import annotations

import pytest
import torch
import torchinfo
from torch import nn

from cnnlab import summary


class CRNN(nn.Module):
    def __init__(self, cell: type, batch_first: bool, layers: int = 1) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d((2, 1)),
        )  # fmt: skip
        self.rnn = cell(16 * 4, 32, layers, bidirectional=True, batch_first=batch_first)
        self.fc = nn.Linear(64, 11)
        self.last = nn.Linear(64, 5)

    def forward(self, x):
        f = self.cnn(x)  # (B, C, H, W): W is the time axis
        b, c, h, w = f.shape
        f = f.permute(0, 3, 1, 2).reshape(b, w, c * h)
        if not self.batch_first:
            f = f.transpose(0, 1)  # (T, B, F)
        o, _ = self.rnn(f)
        o = o if self.batch_first else o.transpose(0, 1)
        return self.fc(o), self.last(o[:, -1])


def step_macs(cell: type, i: int, h: int) -> int:
    """One direction's one step of one layer: gates · H · (I + H) weights + 2 · gates · H biases."""
    gates = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}[cell]
    return gates * h * (i + h) + 2 * gates * h


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN], ids=lambda c: c.__name__)
@pytest.mark.parametrize("batch_first", [True, False])
def test_a_recurrent_layer_counts_its_weights_at_every_step(cell, batch_first):
    model = CRNN(cell, batch_first, layers=2).eval()
    s = summary(model, (1, 16, 40))
    (rnn,) = [r for r in s.rows if r.name == "rnn"]
    steps = 20  # the map's width after one 2×2 pool
    formula = steps * 2 * (step_macs(cell, 64, 32) + step_macs(cell, 64, 32))  # layer 2 reads 2H
    assert rnn.macs == formula == sum(p.numel() for p in model.rnn.parameters()) * steps
    info = torchinfo.summary(model, input_size=(1, 1, 16, 40), verbose=0)
    (theirs,) = [layer.macs for layer in info.summary_list if layer.var_name == "rnn"]
    assert rnn.macs == theirs
    with torch.no_grad():
        out = model.rnn(torch.zeros((1, steps, 64) if batch_first else (steps, 1, 64)))[0]
    # one image's: torch's output without its batch axis, (T, F) batch_first or not
    batch = 0 if batch_first else 1
    assert rnn.output_shape == tuple(n for i, n in enumerate(out.shape) if i != batch)


def test_an_unbatched_sequence_counts_its_steps():
    """A (T, F) sequence with no batch axis (torch's unbatched input): T steps."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.gru = nn.GRU(4 * 8, 16)

        def forward(self, x):
            f = self.conv(x)[0]  # (C, H, W) of the one image
            return self.gru(f.permute(2, 0, 1).flatten(1))[0]  # (W, C·H): W steps

    s = summary(Net().eval(), (1, 8, 12))
    (gru,) = [r for r in s.rows if r.name == "gru"]
    assert gru.macs == 12 * step_macs(nn.GRU, 32, 16)


class RowsAsSequences(nn.Module):
    """Each image row a sequence of its columns (a batch of H sequences per image), the
    last state of each row classified: a row-wise RNN (ReNet-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        f = self.conv(x)
        b, c, h, w = f.shape
        o, (hn, _) = self.rnn(f.permute(0, 2, 3, 1).reshape(b * h, w, c))
        return self.fc(o)


def test_an_images_rows_run_as_sequences_count_every_rows_steps():
    s = summary(RowsAsSequences().eval(), (1, 8, 12))
    (rnn,) = [r for r in s.rows if r.name == "rnn"]
    assert rnn.macs == 8 * 12 * step_macs(nn.LSTM, 4, 8)  # 8 rows of 12 steps


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN], ids=lambda c: c.__name__)
@pytest.mark.parametrize("batch_first", [True, False])
def test_a_bidirectional_recurrent_layer_sees_every_column(cell, batch_first):
    """Every step of a bidirectional layer reads every column: the rows after it see the
    whole width (autograd: every input column reaches a middle step's output), and none is
    left without a field."""
    model = CRNN(cell, batch_first).eval()
    s = summary(model, (1, 16, 40))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    field = {r.name: r.receptive_field for r in s.rows}
    assert field["rnn"] >= 40 and field["fc"] >= 40 and field["last"] >= 40
    x = torch.randn(1, 1, 16, 40, requires_grad=True)
    model(x)[0][0, 10, 0].backward()  # the 11th column's score
    assert bool(x.grad[0, 0].abs().sum(0).gt(0).all())


def test_a_rows_recurrent_layer_sees_the_whole_width():
    """A row's last step reads every column: the rows from the LSTM on have a field of the
    whole width (autograd: every column reaches it), none left without one."""
    model = RowsAsSequences().eval()
    s = summary(model, (1, 8, 12))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    assert [r.receptive_field >= 12 for r in s.rows] == [False, True, True]
    x = torch.randn(1, 1, 8, 12, requires_grad=True)
    model(x)[4, -1, 0].backward()  # row 4, last step
    assert bool(x.grad[0, 0].abs().sum(0).gt(0).all())
