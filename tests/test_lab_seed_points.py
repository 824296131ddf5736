"""Where a verdict rests on a difference between bars (pooling's agreement, sharing's and
heads' train and test accuracy, stacking's accuracy, parameters' accuracy per model), the
figure shows each seed's value as a dot beside the mean, so a reader sees whether the seeds
agree (a bar of the mean alone hid it). Truth: the stored full lab's measurements (3 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.lab import ex_heads, ex_parameters, ex_pooling, ex_sharing, ex_stacking

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def measurements(name: str) -> dict:
    return json.loads(STORED.read_text())["experiments"][name]["measurements"]


def dots(fig) -> list[tuple[float, list[float]]]:
    """(x, sorted y values) of every black-dot line in `fig`."""
    found = []
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() == "." and line.get_color() == "k":
                xs = {round(float(x), 6) for x in line.get_xdata()}
                assert len(xs) == 1, xs  # one x per bar
                found.append((xs.pop(), sorted(float(y) for y in line.get_ydata())))
    return found


def expected(name: str) -> list[list[float]]:
    """Each bar's seeds' values, sorted, from the measurements alone."""
    m = measurements(name)
    rows = m["seeds"]
    if name == "pooling":
        keys = [(n, "agreement", px) for px in ("1", "2") for n in ex_pooling.DOWNS]
        out = [[r[n][a][px] for r in rows] for n, a, px in keys]
        return out + [[r[n]["test"] for r in rows] for n in ex_pooling.DOWNS]
    if name == "sharing":
        return [[r[n][k] for r in rows] for k in ("train", "test") for n in ex_sharing.MODELS]
    if name == "heads":
        return [[r[n][k] for r in rows] for k in ("train", "test") for n in ex_heads.MODELS]
    if name == "stacking":
        return [[r[b]["test"] for r in rows] for b in ex_stacking.BLOCKS]
    return [[r[n] for r in rows] for n in ex_parameters.MODELS]


@pytest.mark.parametrize(
    "module", [ex_pooling, ex_sharing, ex_heads, ex_stacking, ex_parameters],
    ids=lambda mod: mod.EXPERIMENT.name,
)  # fmt: skip
def test_each_seed_is_a_dot_beside_its_bar(module):
    name = module.EXPERIMENT.name
    found = dots(module.figure(measurements(name)))
    assert sorted(v for _, v in found) == sorted(sorted(v) for v in expected(name))
    assert all(len(v) == 3 for _, v in found)
