"""A stored lab read back is judged by today's rules. Rules were revised after labs had run
(pooling's low-pass cut, heads' train-test gap, vanishing's SGD rates); results.json keeps
each verdict as judged then, and the page and the terminal table showed it under today's
rule: the stored full lab's pooling section read 'above 0 by more than 2 sd of the cuts'
beneath a rule asking for a 5 % cut. Truth: each experiment's judge on the stored
measurements (the README's table is checked against the same, tests/test_lab_full.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.lab import experiments, load_results, render_page

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def test_a_stored_lab_is_shown_with_todays_verdicts(tmp_path):
    shutil.copy(STORED, tmp_path / "results.json")
    stored = json.loads(STORED.read_text())["experiments"]
    old = stored["pooling"]["verdict"]["meaning"]
    results = load_results(tmp_path)
    for e in experiments():
        today = e.judge(stored[e.name]["measurements"])
        assert results.verdict(e.name) == today, e.name
    page = render_page(experiments(["pooling"]), results)
    today = experiments(["pooling"])[0].judge(stored["pooling"]["measurements"]).meaning
    assert old != today  # the rule was revised after this lab ran
    assert today in page and old not in page


def test_measurements_todays_rule_cannot_read_keep_their_stored_verdict(tmp_path):
    data = json.loads(STORED.read_text())
    floor = data["experiments"]["floor"]
    floor["measurements"] = {"from": "an older layout"}
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert load_results(tmp_path).experiments["floor"]["verdict"] == floor["verdict"]


@pytest.mark.parametrize("drop", ["seconds", "verdict", "meaning"])
def test_an_entry_without_a_field_the_lab_writes_is_one_line(tmp_path, capsys, drop):
    """A results.json whose floor entry lacked 'seconds' ran the lab, then ended in a KeyError
    traceback printing the table: it is refused before anything runs, naming the entry."""
    data = json.loads(STORED.read_text())
    floor = data["experiments"]["floor"]
    (floor["verdict"] if drop == "meaning" else floor).pop(drop)
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert main(["lab", "--resume", "--only", "floor", "--out", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "experiment 'floor' has no" in err and drop in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and out == ""


def test_a_verdict_todays_rule_cannot_read_is_marked_as_stored_on_the_page(tmp_path):
    """The stored verdict of measurements in an older layout was shown under today's rule as
    if that rule had given it. The page says it is the stored one and how to measure it anew;
    a verdict judged again says nothing of the kind, and results.json is not changed by it."""
    data = json.loads(STORED.read_text())
    data["experiments"]["floor"]["measurements"] = {"from": "an older layout"}
    (tmp_path / "results.json").write_text(json.dumps(data))
    results = load_results(tmp_path)
    page = render_page(experiments(["floor", "softmax"]), results)
    floor, softmax = page.split('<section id="floor">')[1].split('<section id="softmax">')
    assert "the one stored when the lab ran" in floor and "--rerun floor" in floor
    assert "the one stored when the lab ran" not in softmax
    assert "stale" not in json.dumps(results.to_dict())
