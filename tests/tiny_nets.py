"""The source of a tiny classifier for tests that load a model from a file (`--model
nets.py:NAME`): one 3×3 conv of `width` channels, ReLU, GAP and a linear layer to 10
classes, seeded, for 1×H×W images (digits)."""

from __future__ import annotations


def tiny_net_source(name: str = "make", width: int = 4) -> str:
    """A Python file defining `name()`, which returns the net."""
    return f"""
import torch
from torch import nn


def {name}():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, {width}, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear({width}, 10),
    )
"""
