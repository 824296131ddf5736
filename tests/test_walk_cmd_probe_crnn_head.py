"""The classic CRNN head (meijieru/crnn.pytorch's BidirectionalLSTM): `rec, _ = self.rnn(x);
T, b, h = rec.size(); out = self.embedding(rec.view(T * b, h)); return out.view(T, b, -1)`.
Its output (T, B, K) holds K class scores per step, last, as the LSTM's holds its hidden
units. inspect lost them through the views (a reshape's output read as (N, C, ...), and a
2-D tensor not followed): the head's channels were dim 1, the images' axis itself, so probe
and actmax read the T steps as its channels. Truth: torch's own output, `out[..., c]`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.explain.probe import extract_features
from cnnlab.inspect.batch_axis import images_first, layer_axes

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS, CLASSES = 5, 11


class BidirectionalLSTM(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(n_in, hidden, bidirectional=True)
        self.embedding = nn.Linear(hidden * 2, n_out)

    def forward(self, x):
        rec, _ = self.rnn(x)
        T, b, h = rec.size()
        out = self.embedding(rec.view(T * b, h))
        return out.view(T, b, -1)


class CRNN(nn.Module):
    """conv → (W = 5, B, 8) columns, sequence first → the head: (T = 5, B, 11)."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d((1, STEPS))
        self.head = BidirectionalLSTM(8, 6, CLASSES)

    def columns(self, x):
        return self.pool(self.cnn(x)).squeeze(2).permute(2, 0, 1)

    def forward(self, x):
        return self.head(self.columns(x))


def _model() -> CRNN:
    torch.manual_seed(0)
    return CRNN().eval()


def _outputs(model: CRNN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torch's own (T, B, ·) outputs of the LSTM and of the head."""
    with torch.no_grad():
        cols = model.columns(x)
        return {"head.rnn": model.head.rnn(cols)[0], "head": model.head(cols)}


def _data(n: int = 6):
    torch.manual_seed(1)
    return torch.randn(n, 1, 12, 20), torch.randint(0, 3, (n,))


LAYERS = ("head.rnn", "head")  # the LSTM's (T, B, 12) and the head's (T, B, 11), together


def test_the_head_is_read_images_first_with_its_last_axis_as_channels():
    model = _model()
    x, _ = _data()
    outs = _outputs(model, x)
    for layer in LAYERS:
        got = images_first(outs[layer], *layer_axes(model, x, layer))
        assert torch.equal(got, outs[layer].permute(1, 2, 0)), layer  # (B, ·, T), by torch


def test_probe_features_keep_the_class_scores():
    model = _model()
    x, y = _data()
    outs = _outputs(model, x)
    got, _ = extract_features(model, (x, y), list(LAYERS), cap=10**6)
    for layer in LAYERS:
        truth = outs[layer].permute(1, 2, 0).flatten(1)
        assert torch.allclose(got[layer], truth, atol=1e-6), layer
    for layer in LAYERS:  # one position per channel: each channel's mean over the steps
        pooled, _ = extract_features(model, (x, y), [layer], cap=outs[layer].shape[-1])
        assert torch.allclose(pooled[layer], outs[layer].mean(0), atol=1e-6), layer


@pytest.mark.parametrize("objective", ["centre", "mean"])
def test_activation_maximisation_of_a_channel_raises_that_class_score(objective):
    model = _model()
    chans = [0, 7, 10]  # 7, 10: past the T = 5 steps
    for layer in LAYERS:
        r = explain.activation_maximization(
            model, layer, chans, steps=3, restarts=2, objective=objective, input_size=(1, 12, 20)
        )
        out = _outputs(model, r.images)[layer].transpose(0, 1)  # torch's (B, T, ·)
        assert out.shape[1] == STEPS
        score = out[torch.arange(3), :, chans]  # (N, T): channel c of image i, every step
        truth = score[:, STEPS // 2] if objective == "centre" else score.mean(1)
        assert torch.allclose(r.activation, truth, atol=1e-5), layer
