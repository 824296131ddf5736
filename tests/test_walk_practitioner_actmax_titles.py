"""The report's activation-maximisation tiles of a model from code, whose layers have dotted
names ('layer2.0.shortcut.1 BatchNorm2d'): each tile's title stays within its own column, so
no title is drawn over its neighbour's (two stages a row of 1-inch tiles wrote 'layer1.1.bn2
BatchNorm2d ch 0' across the next tile's title). Truth: matplotlib's rendered extents of the
titles, from the figure the report draws."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from cnnlab.report import Budget, plots, show
from cnnlab.report.facts import ActmaxTile


def _drawn_titles(monkeypatch, tiles, budget):
    figures = []
    monkeypatch.setattr(plots, "to_uri", lambda fig: figures.append(fig) or "data:,")
    show.show_actmax(tiles, SimpleNamespace(budget=budget))
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [(ax.title.get_text(), ax.title.get_window_extent(renderer))
            for ax in fig.axes if ax.title.get_text()]  # fmt: skip


def test_no_title_runs_into_another(monkeypatch):
    budget = Budget()
    layers = ["layer1.1.bn2 BatchNorm2d", "layer2.0.shortcut.1 BatchNorm2d",
              "net.resnet.encoder.stages.1.layers.0.layer.0.convolution Conv2d"]  # fmt: skip
    image = np.random.default_rng(0).random((3, 16, 16))
    ratios = [2.1, float("nan"), 18.0, 5.7][: budget.actmax_channels]
    tiles = [ActmaxTile(layer, c, image, ratio, 60)
             for layer in layers for c, ratio in enumerate(ratios)]  # fmt: skip
    titles = _drawn_titles(monkeypatch, tiles, budget)
    assert len(titles) == len(tiles)
    for i, (text, box) in enumerate(titles):
        for other, other_box in titles[i + 1 :]:
            assert not box.overlaps(other_box), (text, other)
