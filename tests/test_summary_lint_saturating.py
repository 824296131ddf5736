"""saturating: vanishing is a product of derivatives, each at most 0.25 for a sigmoid, so a
deep net fires where at least two saturating activations feed its layers, and one alone
(additive attention's tanh before its scoring Linear, a tanh in a deep ReLU net's head) scales
the gradient once, by a factor that depth does not shrink: silent.
Truth: torch's autograd of sigmoids in series at their steepest point (0.25 each)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def relu_body(depth: int = 6) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()]
    return layers


class AttentionPool(nn.Module):
    """Additive attention pooling: score_i = v · tanh(W h_i), a softmax over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.w, self.v = nn.Sequential(*relu_body()), nn.Linear(4, 8), nn.Linear(8, 1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        h = self.body(x).flatten(2).transpose(1, 2)  # (B, positions, 4)
        a = self.v(torch.tanh(self.w(h))).softmax(1)  # (B, positions, 1)
        return self.fc((a * h).sum(1))


def tanh_head(squashes: int) -> nn.Sequential:
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for _ in range(squashes):
        head += [nn.Linear(4, 4), nn.Tanh()]
    return nn.Sequential(*relu_body(), *head, nn.Linear(4, 10))


def fires(model: nn.Module) -> bool:
    return "saturating" in {w.code for w in summary(model, (4, 8, 8)).warnings}


def test_one_saturating_activation_scales_the_gradient_once_silent() -> None:
    assert not fires(AttentionPool())
    assert not fires(tanh_head(1))


def test_two_or_more_fire_their_derivatives_multiply() -> None:
    x = torch.zeros(1, requires_grad=True)
    for k in (1, 2, 3):
        y = x
        for _ in range(k):
            y = torch.sigmoid(y) - 0.5  # at 0 each time: sigmoid's steepest point
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert grad.item() == pytest.approx(0.25**k)
    assert fires(tanh_head(2)) and fires(tanh_head(3))
