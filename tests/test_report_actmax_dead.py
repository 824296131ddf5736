"""The report's activation-maximisation tiles on a channel no test image makes positive (a
ReLU whose conv has a bias of -100: dead by construction). Its ratio to the data's best is
undefined (explain gives nan), and the tile's title read 'nan× data max'; it says the channel
never fires on the data, and a live channel keeps its ratio."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from cnnlab.explain import activation_maximization
from cnnlab.report import Budget, show
from cnnlab.report.facts import ActmaxTile


def test_a_dead_channels_tile_says_it_never_fires_not_nan(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 3))
    with torch.no_grad():
        model[0].bias[0] = -100.0  # channel 0 never > 0 on images in [0, 1]
        model[0].bias[1] = 1.0  # channel 1 positive on some
    data = torch.rand(16, 1, 8, 8)
    r = activation_maximization(model, "1", [0, 1], steps=2, data=data, restarts=1)
    ratios = [float(v) for v in r.ratio]
    assert float(r.data_max[0]) <= 0 and float(r.data_max[1]) > 0  # the construction holds
    tiles = [
        ActmaxTile("1 ReLU", c, r.images[i].numpy(), ratios[i], 16) for i, c in enumerate((0, 1))
    ]
    drawn = []  # the titles drawn over the tiles
    real = show.plots.image_grid
    monkeypatch.setattr(
        show.plots,
        "image_grid",
        lambda imgs, titles, **kw: drawn.append(titles) or real(imgs, titles, **kw),
    )
    facts = SimpleNamespace(budget=Budget(actmax_channels=2, actmax_steps=2))
    caption = show.show_actmax(tiles, facts)[0]["caption"]
    dead, live = drawn[0]
    assert "nan" not in dead and "never > 0" in dead
    assert live.endswith(f"{ratios[1]:.1f}× data max")
    assert "Never > 0 on data" in caption
    assert "Never > 0" not in show.show_actmax(tiles[1:], facts)[0]["caption"]  # only when one is
