"""Linear probes on a layer whose output has one row per window, not per image (a Swin
window attention's): refused by name, where the fit failed on a batch-size mismatch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ExplainError
from cnnlab.explain import linear_probe


class Windows(nn.Module):
    """(B, C, H, W) -> (4B, C, H/2, W/2): the map cut into four windows, each a row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b * 4, c, h // 2, w // 2)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.windows = Windows()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.windows(torch.relu(self.conv(x)))  # rows: windows
        b = x.shape[0]
        return self.head(y.mean((2, 3)).reshape(b, 4, 4).mean(1))


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_a_layer_with_rows_per_window_is_refused_by_name():
    model = Net().eval()
    with pytest.raises(ExplainError, match=r"layer 'windows' gives 24 rows for 6 images"):
        linear_probe(model, _data(6, 0), _data(6, 1), layers=["windows"], epochs=2)


def test_the_layers_with_rows_per_image_still_probe():
    model = Net().eval()
    found = linear_probe(model, _data(12, 0), _data(12, 1), layers=["conv"], epochs=2)
    assert set(found) == {"input", "conv"}
    assert all(0.0 <= a <= 1.0 for a in found.values())
