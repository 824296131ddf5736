"""A sentence's "mean ± sd" says over how many seeds, as "over 1 seed" in the quick lab, where
every spread is "?": "over seeds" beside "± ?" read as if several had been measured. Truth:
the stored full lab's measurements, all three seeds and cut to the first."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cnnlab.lab import experiments

STORED = json.loads((Path(__file__).parent / "data" / "lab_full_results.json").read_text())


def meaning(name: str, seeds: int) -> str:
    m = copy.deepcopy(STORED["experiments"][name]["measurements"])
    m["seeds"] = m["seeds"][:seeds]
    return next(e for e in experiments() if e.name == name).judge(m).meaning


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
@pytest.mark.parametrize("seeds", [1, 3])
def test_mean_and_sd_name_how_many_seeds(experiment, seeds):
    said = meaning(experiment.name, seeds)
    assert "over seeds" not in said, said


@pytest.mark.parametrize("name", ["heads", "softmax", "explanations", "nonlinearity", "pooling"])
def test_one_seed_is_said_one_seed(name):
    said = meaning(name, 1)
    assert "mean ± sd over 1 seed" in said and "± ?" in said, said
    assert "mean ± sd over 3 seeds" in meaning(name, 3)
