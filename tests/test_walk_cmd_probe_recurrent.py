"""A recurrent layer's features are its hidden units, on its output's last axis, (T, B, H) or
(B, T, H), as a Linear's are on (B, N, C)'s. inspect followed F.conv*/F.linear, not torch's
recurrent ops, and read dim 1 of the images-first output as the channels: the time steps.
`activation_maximization(model, 'rnn', [c])` maximised step c at its middle hidden unit
(objective 'mean': averaged over the units) and refused a unit past the T steps, and the
probe's pooling at the default cap pooled the hidden units away and kept the steps. Truth:
torch's own output of the layer, `out[..., c]`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.explain.probe import extract_features

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 4


class CRNN(nn.Module):
    """conv → (W = 4, B, 4·H = 16) columns, sequence first unless batch_first → rnn → head."""

    def __init__(self, kind: str = "LSTM", hidden: int = 12, batch_first: bool = False):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.rnn = getattr(nn, kind)(16, hidden, batch_first=batch_first)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, 3)
        self.batch_first = batch_first

    def sequence(self, x):
        """torch's own output of `rnn`, (T, B, H) (batch_first: (B, T, H))."""
        f = self.conv(x)  # (B, 4, 4, 4)
        order = (0, 3, 1, 2) if self.batch_first else (3, 0, 1, 2)
        return self.rnn(f.permute(order).flatten(2))[0]

    def forward(self, x):
        out = self.drop(self.sequence(x))
        return self.head(out[:, -1] if self.batch_first else out[-1])


def _model(**kwargs) -> CRNN:
    torch.manual_seed(0)
    return CRNN(**kwargs).eval()


@pytest.mark.parametrize("objective", ["centre", "mean"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_activation_maximisation_of_an_lstm_channel_raises_that_hidden_unit(objective, batch_first):
    model = _model(batch_first=batch_first)
    chans = [0, 5, 11]  # 11: a hidden unit past the T = 4 steps
    r = explain.activation_maximization(
        model, "rnn", chans, steps=3, restarts=2, objective=objective, input_size=(1, 8, 8)
    )
    with torch.no_grad():
        out = model.sequence(r.images)
    out = out if batch_first else out.transpose(0, 1)  # torch's (B, T, H)
    assert out.shape[1:] == (STEPS, 12)
    unit = out[torch.arange(3), :, chans]  # (N, T): hidden unit c of image i, every step
    truth = unit[:, STEPS // 2] if objective == "centre" else unit.mean(1)
    assert torch.allclose(r.activation, truth, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_probe_features_at_the_default_cap_keep_the_hidden_units(kind):
    """512 hidden units × 4 steps: the default cap of 1024 keeps 2 positions; it kept the 4
    steps and averaged hidden units in pairs."""
    model = _model(kind=kind, hidden=512)
    torch.manual_seed(1)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    got, _ = extract_features(model, (x, y), ["rnn", "drop"])
    with torch.no_grad():
        out = model.sequence(x)  # (T = 4, B, 512)
    halves = torch.stack([out[:2].mean(0), out[2:].mean(0)], 2)  # (B, 512, 2)
    assert torch.allclose(got["rnn"], halves.flatten(1), atol=1e-6)
    assert torch.allclose(got["drop"], halves.flatten(1), atol=1e-6)  # its input's units


def test_the_features_need_no_pooling_below_the_cap():
    model = _model()
    torch.manual_seed(1)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    got, _ = extract_features(model, (x, y), ["rnn"], cap=12)  # one position per unit
    with torch.no_grad():
        truth = model.sequence(x).mean(0)  # (B, H): each unit over the T steps
    assert torch.allclose(got["rnn"], truth, atol=1e-6)
