"""The report's linear-probe plot: accuracies are percentages, so its axis stays within
0–100 % (autoscale's margin ran it to about 101 % when a probe reached 99 %)."""

from __future__ import annotations

import pytest

from cnnlab.report import plots


@pytest.mark.parametrize(("accuracy", "baseline"), [([0.6, 0.95, 0.99], 0.8), ([0.0, 0.02], None)])
def test_the_probe_axis_stays_within_0_and_100_percent(monkeypatch, accuracy, baseline):
    seen = {}

    def kept(fig):
        seen["ylim"] = fig.axes[0].get_ylim()
        return "data:"

    monkeypatch.setattr(plots, "to_uri", kept)
    plots.probe([f"layer{i}" for i in range(len(accuracy))], accuracy, baseline)
    low, high = seen["ylim"]
    assert 0.0 <= low and high <= 100.0
    assert low <= min(accuracy) * 100 and max(accuracy) * 100 <= high  # every point shown
