"""Layers that mix channels at each position and nothing across it, as practitioners write
them: AlexNet's nn.LocalResponseNorm, ShuffleNet's nn.ChannelShuffle (torch's own). Neither
grows a field: the rows after them keep theirs. Truth: autograd's extent of the output's
centre unit, torch's own shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import summary


def extent(model: nn.Module, size: tuple[int, ...]) -> int:
    """Rows of the input that reach the output's centre unit, by autograd."""
    x = torch.randn(1, *size, requires_grad=True)
    y = model(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return int(x.grad[0].abs().sum((0, 2)).gt(0).sum())


MIXERS = {
    "LocalResponseNorm": lambda: nn.LocalResponseNorm(5),
    "ChannelShuffle": lambda: nn.ChannelShuffle(2),
}


@pytest.mark.parametrize("name", list(MIXERS))
def test_a_channel_mixer_keeps_the_field(name):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), MIXERS[name](), nn.Conv2d(8, 4, 3, padding=1)
    ).eval()
    s = summary(model, (3, 12, 12))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    assert [r.receptive_field for r in s.rows] == [3, 3, 3, 5]
    assert s.rows[-1].receptive_field == extent(model, (3, 12, 12))
    with torch.no_grad():
        shapes = [tuple(model[: i + 1](torch.zeros(1, 3, 12, 12)).shape[1:]) for i in range(4)]
    assert [r.output_shape for r in s.rows] == shapes


class AlexNetSmall(nn.Module):
    """AlexNet's features as the paper has them (LRN after the first two convs), narrowed."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 11, 4, 2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2), nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(48, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def test_alexnet_with_lrn_has_every_field_and_its_fields_by_the_formula():
    """§3.2 by hand: 11/4 (11, jump 4), pool 3/2 (19, 8), 5×5 (51, 8), pool 3/2 (67, 16),
    3×3 (99, 16), pool 3/2 (131, 32); the LRN rows keep the conv's before them."""
    s = summary(AlexNetSmall().eval(), (3, 127, 127))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    fields = {r.name: (r.receptive_field, r.jump) for r in s.rows}
    assert fields["features.2"] == fields["features.0"] == (11, 4)
    assert fields["features.6"] == fields["features.4"] == (51, 8)
    assert fields["features.10"] == (131, 32)
