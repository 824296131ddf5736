"""The report's feature-map figure of a model from code, whose layers have dotted names: each
row's label (the layer, its kind, its map size) stays within its row, so no label is drawn
over the next one (on one line 'layer2.0.shortcut.1 BatchNorm2d' ran up and down across three
rows). Truth: matplotlib's rendered extents of the labels, from the figure the report draws."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from cnnlab.report import plots


def test_no_row_label_runs_into_another(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "to_uri", lambda fig: figures.append(fig) or "data:,")
    names = ["stem.2 ReLU", "layer1.0.bn2 BatchNorm2d", "layer2.0.shortcut.1 BatchNorm2d",
             "net.resnet.encoder.stages.1.layers.0.layer.0.convolution Conv2d", "layer3 Sequential",
             "layer3.0.shortcut.1 BatchNorm2d"]  # fmt: skip
    maps = np.random.default_rng(0).random((8, 16, 16))
    plots.feature_maps([(name, maps) for name in names], channels=8)
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    labels = [(ax.yaxis.label.get_text(), ax.yaxis.label.get_window_extent(renderer))
              for ax in fig.axes if ax.yaxis.label.get_text()]  # fmt: skip
    assert len(labels) == len(names)
    for i, (text, box) in enumerate(labels):
        for other, other_box in labels[i + 1 :]:
            assert not box.overlaps(other_box), (text, other)
    assert labels[1][0] == "layer1.0.bn2\nBatchNorm2d\n16×16"  # name, kind and size kept
    assert labels[3][0].splitlines()[0].endswith("0.convolution")  # a long name's end kept
