"""The dying experiment's 'at chance' on stored results: the full lab's stored runs record the
trainer's validation accuracy ('val') and are read on it; results stored before 'val' was
recorded (an older results.json a user may hold) are read on their test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.lab import ex_dying

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def stored_dying() -> dict:
    return json.loads(STORED.read_text())["experiments"]["dying"]


def trained_runs(measurements: dict) -> list[dict]:
    return [
        r
        for row in measurements["seeds"]
        for name in ex_dying.ACTIVATIONS
        for r in row[name]
        if not r["diverged"]
    ]


def test_every_stored_run_that_trained_records_its_validation_accuracy():
    """The full lab's dying entry was measured with 'val', so its runs at chance are read on
    validation, not on the test set the verdict is read on."""
    runs = trained_runs(stored_dying()["measurements"])
    assert runs and all("val" in r for r in runs)
    assert any(ex_dying.at_chance(r) for r in runs)  # the rule's reading of 'val' is exercised
    for r in runs:
        assert ex_dying.at_chance(r) == (r["val"] < ex_dying.CHANCE)


def test_a_run_without_val_is_read_on_its_test_accuracy():
    """An older results.json has no 'val': its test accuracy stands in, below CHANCE at
    chance; a run with 'val' is read on it whatever its test accuracy."""
    old = {"lr": 1.0, "diverged": False, "dead": 0.8, "dead_per_layer": [0.7, 0.8, 0.9]}
    assert ex_dying.at_chance(old | {"test": 9.0})
    assert not ex_dying.at_chance(old | {"test": 60.0})
    assert not ex_dying.at_chance(old | {"test": 9.0, "val": 60.0})
    assert ex_dying.at_chance(old | {"test": 60.0, "val": 9.0})


def test_the_stored_lab_without_val_is_judged_alike():
    """The same measurements as an older results.json (every 'val' dropped) give the stored
    verdict and sentence: there, every run at chance on validation is at chance on test too."""
    entry = stored_dying()
    old = json.loads(json.dumps(entry["measurements"]))
    for r in trained_runs(old):
        r.pop("val")
    again = ex_dying.judge(old)
    assert (again.outcome, again.meaning) == (
        entry["verdict"]["outcome"],
        entry["verdict"]["meaning"],
    )
