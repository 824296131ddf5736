"""A first/last gradient-norm ratio of 1 or more is a gradient that grew on its way back to
the first layer, not a share of it kept: the vanishing sentence says it grew. Truth: the
stored full lab's own ratios (its first seed's tanh net: first/last 2.09)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from cnnlab.lab import experiments

STORED = json.loads((Path(__file__).parent / "data" / "lab_full_results.json").read_text())
VANISHING = experiments(["vanishing"])[0]


def measurements(seeds: int) -> dict:
    m = copy.deepcopy(STORED["experiments"]["vanishing"]["measurements"])
    m["seeds"] = m["seeds"][:seeds]
    return m


def test_a_gradient_that_grew_is_said_to_have_grown():
    m = measurements(1)
    ratio = m["seeds"][0]["tanh"]["ratio"]
    assert ratio > 1
    meaning = VANISHING.judge(m).meaning
    assert f"tanh's gradient grew at least {ratio:.2g}× from the last layer to the first" in meaning
    assert "kept at least 2e+00" not in meaning and "kept at least 1e+00" not in meaning


def test_relu_growth_is_said_the_same_way():
    m = measurements(1)
    m["seeds"][0]["relu"]["ratio"] = 3.4
    meaning = VANISHING.judge(m).meaning
    assert "ReLU's gradient grew at least 3.4× from the last layer to the first" in meaning
    assert "ReLU at least 3e+00" not in meaning


def test_a_share_below_one_is_still_a_share_kept():
    """Over three seeds the least tanh ratio is 0.90: a share kept, worded as before."""
    meaning = VANISHING.judge(measurements(3)).meaning
    assert "tanh kept at least 9e-01" in meaning and "ReLU at least 4e-01" in meaning
    assert "grew" not in meaning
