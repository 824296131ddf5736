"""probabilities-out on what follows the softmax or sigmoid and on maps: a post-op that keeps
the values within one unit of each other (a clamp, clip, dropout at eval, a number added, 1 − p)
keeps cross-entropy's ceiling e/(e + n − 1), so the lint fires; one that makes log-probabilities
(log, log_softmax) or widens the gap (a scale) does not. A map's classes are its channels
(cross-entropy's axis 1): one channel, (B, 1, H, W) as a sigmoid segmentation head makes it, is
a BCE head like the 1-output one (its cross-entropy is identically 0): silent.
Truths: torch's F.cross_entropy and softmax of the real outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = "probabilities-out"


class Then(nn.Module):
    """A conv net's (B, classes, H, W) map, or its GAP head's (B, classes) logits, then `last`."""

    def __init__(self, last, classes: int = 10, gap: bool = True) -> None:
        super().__init__()
        self.conv, self.fc, self.gap, self.last = nn.Conv2d(1, 4, 3, padding=1), None, gap, last
        self.fc = nn.Linear(4, classes) if gap else nn.Conv2d(4, classes, 1)

    def forward(self, x):
        h = F.relu(self.conv(x))
        return self.last(self.fc(h.mean((2, 3))) if self.gap else self.fc(h))


def fires(model: nn.Module, size=(1, 8, 8)) -> bool:
    return CODE in {w.code for w in summary(model, size).warnings}


KEEP = {
    "clamp": lambda z: z.softmax(1).clamp(1e-7, 1),
    "clamp_": lambda z: z.softmax(1).clamp_(1e-7, 1 - 1e-7),
    "clip": lambda z: torch.clip(z.softmax(1), 1e-6, 1),
    "plus eps": lambda z: z.softmax(1) + 1e-7,
    "add_ eps": lambda z: z.softmax(1).add_(1e-7),
    "1 - p": lambda z: 1 - z.softmax(1),
    "dropout at eval": lambda z: F.dropout(z.softmax(1), 0.5, training=False),
    "times 1": lambda z: z.softmax(1) * 1,
    "times 0.5": lambda z: 0.5 * z.softmax(1),
    "over 2": lambda z: z.softmax(1) / 2,
    "sigmoid clamped": lambda z: torch.sigmoid(z).clamp(1e-6, 1 - 1e-6),
}


@pytest.mark.parametrize("which", KEEP)
def test_a_post_op_that_keeps_probabilities_fires(which: str) -> None:
    """Its outputs lie within one unit of each other, so cross-entropy's softmax of them is
    at most e/(e + n − 1): the bound the lint gives holds."""
    model = Then(KEEP[which])
    out = model(torch.randn(64, 1, 8, 8)).detach()
    assert float((out.amax(1) - out.amin(1)).max()) <= 1
    assert float(out.softmax(1).max()) <= math.e / (math.e + 9) + 1e-6
    assert fires(model)


def test_an_nn_dropout_after_a_softmax_fires() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.extend([nn.Linear(4, 10), nn.Softmax(1), nn.Dropout(0.1)])
    assert fires(model.eval())


CHANGE = {
    "log": lambda z: z.softmax(1).log(),
    "log of p + eps": lambda z: (z.softmax(1) + 1e-7).log(),
    "log_softmax after": lambda z: F.log_softmax(z.softmax(1), 1),
    "times 100 (a temperature)": lambda z: z.softmax(1) * 100,
    "over 0.01": lambda z: z.softmax(1) / 0.01,
    "plus the logits": lambda z: z.softmax(1) + z,
    "add_ the logits": lambda z: z.softmax(1).add_(z),
}


@pytest.mark.parametrize("which", CHANGE)
def test_a_post_op_that_makes_them_no_probabilities_is_silent(which: str) -> None:
    """log p is log_softmax(z), whose cross-entropy is the logits' (torch's numbers); a scale
    or the logits added lift the ceiling (a softmax of the output passes it)."""
    model = Then(CHANGE[which])
    z = torch.randn(64, 10, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (64,))
    if "log" in which:
        assert F.cross_entropy(z.softmax(1).log(), y) == pytest.approx(F.cross_entropy(z, y))
    else:
        out = model(torch.randn(64, 1, 8, 8)).detach()
        assert float(out.softmax(1).max()) > math.e / (math.e + 9)
    assert not fires(model)


@pytest.mark.parametrize("last", [nn.Sigmoid(), torch.sigmoid], ids=["nn.Sigmoid", "torch"])
def test_a_one_channel_sigmoid_map_is_a_bce_head_silent(last) -> None:
    """(B, 1, H, W) probabilities per pixel: cross-entropy over its one channel is 0 in
    torch, as for the (B, 1) head, so it is trained with nn.BCELoss, as intended."""
    model = Then(last, classes=1, gap=False)
    out = model(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 1, 8, 8)
    assert F.cross_entropy(out, torch.zeros(2, 8, 8, dtype=torch.long)).item() == 0.0
    assert not fires(model)
    assert not fires(Then(lambda z: z.flatten(2).softmax(-1).view_as(z), classes=1, gap=False))


@pytest.mark.parametrize("last", [lambda z: z.softmax(1), torch.sigmoid], ids=["soft", "sig"])
def test_a_map_of_several_channels_fires_with_its_classes(last) -> None:
    """(B, 3, H, W) probabilities: cross-entropy's axis 1 holds 3 classes, its bound
    e/(e + 2) = 0.58 per pixel (torch's cross-entropy of a one-hot map)."""
    best = F.one_hot(torch.zeros(1, 4, 4, dtype=torch.long), 3).permute(0, 3, 1, 2).double()
    loss = F.cross_entropy(best, torch.zeros(1, 4, 4, dtype=torch.long))
    assert math.exp(-loss.item()) == pytest.approx(math.e / (math.e + 2))
    lint = {w.code: w for w in summary(Then(last, 3, gap=False), (1, 8, 8)).warnings}[CODE]
    assert "= 0.58 with these 3 outputs" in lint.message
