"""The report's gradient-flow bars carry the notes `cnnlab diagnose` prints: a frozen layer's
bar is measured but judged by no finding, and unmarked it reads as a vanishing gradient."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from cnnlab.report.facts import _flow


def test_a_frozen_layers_bar_is_labelled_frozen():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    model[1].requires_grad_(False)
    x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    src = SimpleNamespace(model=model, test=(None, x, y), budget=SimpleNamespace(gradient_images=6))
    health = _flow(src)
    assert health.labels == ("1 Linear (frozen)", "3 Linear")
    assert [layer.frozen for layer in health.result.layers] == [True, False]
    assert model[1].weight.requires_grad is False  # measured, then restored
