"""A spread over one seed is unknown, not 0: every verdict sentence and number of a one-seed
lab writes it "± ?", where it wrote "± 0.0". Truth: the stored full lab's measurements cut to
their first seed (a one-seed lab's layout), and the same with all three seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from cnnlab.cli.lab import _print_table
from cnnlab.lab import experiments
from cnnlab.lab.experiment import Effect, mean_spread
from cnnlab.lab.page import render_page
from cnnlab.lab.runner import LabResults

STORED = json.loads((Path(__file__).parent / "data" / "lab_full_results.json").read_text())
ZERO_SPREAD = re.compile(r"± *0(?:\.0+)?%?(?![\d.])")


def texts(verdict) -> list[str]:
    return [verdict.meaning, *(str(v) for v in verdict.numbers.values())]


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
def test_one_seed_writes_its_spread_as_unknown(experiment):
    measurements = dict(STORED["experiments"][experiment.name]["measurements"])
    measurements["seeds"] = measurements["seeds"][:1]
    for text in texts(experiment.judge(measurements)):
        assert not ZERO_SPREAD.search(text), text


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
def test_three_seeds_write_their_spread(experiment):
    verdict = experiment.judge(STORED["experiments"][experiment.name]["measurements"])
    assert all("± ?" not in text for text in texts(verdict))


def test_the_spread_of_one_value_computes_as_zero_and_is_written_unknown():
    mean, sd = mean_spread([82.34])
    assert (mean, sd + 0, sd * 2) == (82.34, 0.0, 0.0)  # rules read one seed's value alone
    assert f"{mean:.1f} ± {sd:.1f}" == "82.3 ± ?" and f"{sd:.1%}" == "?"
    assert f"{mean_spread([1.0, 2.0])[1]:.2f}" == "0.71"
    assert Effect((2.1,), 2.0).reading == "shown"  # unchanged: one seed against the least
    assert Effect((1.0,), 2.0).reading == "contradicted"


def test_the_page_and_the_terminal_say_what_a_question_mark_is():
    stored = STORED["experiments"]
    chosen = experiments(["spatial"])
    entry = dict(stored["spatial"])
    entry["measurements"] = {**entry["measurements"], "seeds": entry["measurements"]["seeds"][:1]}
    html = render_page(chosen, LabResults(True, [0], {"spatial": entry}))
    assert "± ?" in html and '"± ?" is one seed' in html and "± 0.0" not in html
    html = render_page(chosen, LabResults(False, [0], {"spatial": entry}))
    assert '"± ?" is one run' in html

    for quick, said in ((True, "Quick lab"), (False, "One seed")):
        console = Console(record=True, width=300)
        _print_table(console, chosen, LabResults(quick, [0], {"spatial": entry}))
        out = console.export_text()
        assert said in out and "every ± is '?': no spread measured" in out
    console = Console(record=True, width=300)
    _print_table(console, chosen, LabResults(False, [0, 1, 2], {"spatial": stored["spatial"]}))
    assert "'?'" not in console.export_text()
