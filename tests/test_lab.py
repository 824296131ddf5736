"""The lab's framework: Verdict, the runner's save-as-you-go and resume, the page, the registry.

Experiments here are made up (instant, deterministic), so what is tested is the mechanism:
each finished experiment is in results.json before the next starts, a finished one is not
run again unless asked, a broken one costs only itself, and the page shows every verdict.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.errors import ConfigError, RunError
from cnnlab.lab import (
    MODULES,
    OUTCOMES,
    Experiment,
    Verdict,
    experiments,
    load_results,
    mean_spread,
    render_page,
    run_lab,
)
from cnnlab.lab.experiment import Effect, figure_axes


def fake(name: str, value: float = 1.0, calls: list | None = None, fail: Exception | None = None):
    """An experiment measuring `value` instantly; holds when value > 0."""

    def measure(ctx):
        if calls is not None:
            calls.append(name)
        if fail is not None:
            raise fail
        ctx.progress(1, 1, "done")
        return {"value": value, "seeds": list(ctx.seeds)}

    def judge(m):
        outcome = "holds" if m["value"] > 0 else "does not hold"
        return Verdict(outcome, {"value": m["value"]}, f"value was {m['value']}")

    def figure(m):
        fig, (ax,) = figure_axes(height=2)
        ax.bar([0], [m["value"]])
        return fig

    return Experiment(
        name, name.title(), "§0", "a claim", "a setup", "a rule", judge, measure, figure
    )


def test_verdict_refuses_an_unknown_outcome_and_round_trips():
    with pytest.raises(ValueError, match="not one of"):
        Verdict("true", {}, "")
    v = Verdict("partly", {"a": 1.5}, "half")
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    assert set(OUTCOMES) == {"holds", "does not hold", "partly", "inconclusive"}


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8))
def test_mean_spread_is_mean_and_sample_sd(values):
    mean, sd = mean_spread(values)
    assert mean == pytest.approx(statistics.fmean(values), abs=1e-9)
    expected = statistics.stdev(values) if len(values) > 1 else 0.0
    assert sd == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("differences", "reading"),
    [
        ((10.0, 20.0, 30.0), "shown"),  # uneven but large: every seed above 2
        ((0.1, 0.1, 0.1), "contradicted"),  # steady but below the least (2)
        ((3.0, 2.5, 3.5), "shown"),
        ((3.0, 1.0), "unsettled"),  # seeds on both sides of 2
        ((2.1, 2.1, 40.0), "shown"),  # all above 2 (a mean test, 14.7 < 25.3, would undo it)
        ((1.9, 1.0, -20.0), "unsettled"),  # none above 2, but -5.7 + 2 × 7.15 = 8.6 > 2
        ((-5.0, -5.0), "contradicted"),  # reversed, steadily
        ((2.1,), "shown"),  # one seed: its difference alone against the least
        ((2.0,), "contradicted"),  # not above the least
    ],
)
def test_an_effect_is_shown_above_the_least_on_each_seed_absent_two_errors_under_it(
    differences, reading
):
    """Truth by hand: standard error = sample sd / √n (in the comments), least 2."""
    effect = Effect(differences, 2.0)
    assert effect.reading == reading
    n = len(differences)
    expected = statistics.stdev(differences) / math.sqrt(n) if n > 1 else 0.0
    assert effect.error == pytest.approx(expected)


def test_an_effect_says_its_seeds_and_its_band():
    assert Effect((10.0, 20.0, 30.0), 2.0).said(unit=" points") == (
        "more than 2.0 points on 3 of 3 seeds"
    )
    assert Effect((0.1, 0.1, 0.1), 2.0).said() == (
        "more than 2.0 on 0 of 3 seeds, the mean short of 2.0 by at least 2 standard errors (0.0)"
    )
    assert Effect((2.5,), 2.0).said() == (
        "more than 2.0 on 1 of 1 seed, one seed having no standard error"
    )


def test_each_finished_experiment_is_saved_before_the_next_runs(tmp_path):
    seen = []

    def check_saved(experiment):
        stored = load_results(tmp_path)
        seen.append(sorted(stored.experiments) if stored else [])

    run_lab([fake("a"), fake("b"), fake("c")], tmp_path, seeds=2, on_start=check_saved)
    assert seen == [[], ["a"], ["a", "b"]]
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["seeds"] == [0, 1] and stored["quick"] is False
    assert stored["experiments"]["b"]["verdict"]["outcome"] == "holds"


def test_an_interrupted_lab_keeps_what_finished_and_resume_runs_only_the_rest(tmp_path):
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_lab([fake("a", calls=calls), fake("b", fail=KeyboardInterrupt())], tmp_path)
    assert sorted(load_results(tmp_path).experiments) == ["a"]
    calls.clear()
    results = run_lab([fake("a", calls=calls), fake("b", calls=calls)], tmp_path, resume=True)
    assert calls == ["b"]
    assert sorted(results.experiments) == ["a", "b"]


def test_a_finished_lab_is_not_overwritten_without_resume(tmp_path):
    run_lab([fake("a")], tmp_path, quick=True)
    with pytest.raises(RunError, match="--resume"):
        run_lab([fake("a")], tmp_path, quick=True)
    with pytest.raises(RunError, match="quick=True"):  # a quick result must not mix with a full one
        run_lab([fake("a")], tmp_path, quick=False, resume=True)


def test_rerun_runs_the_named_experiment_again(tmp_path):
    run_lab([fake("a", 1.0), fake("b", 1.0)], tmp_path)
    calls: list[str] = []
    results = run_lab([fake("a", -1.0, calls), fake("b", -1.0, calls)], tmp_path, rerun=["a"])
    assert calls == ["a"]
    assert results.verdict("a").outcome == "does not hold"
    assert results.verdict("b").outcome == "holds"


def test_a_broken_experiment_costs_only_itself_and_is_not_saved(tmp_path):
    results = run_lab([fake("a", fail=ZeroDivisionError("oops")), fake("b")], tmp_path)
    assert "ZeroDivisionError: oops" in results.failed["a"]
    assert list(load_results(tmp_path).experiments) == ["b"]


def test_bad_input_stops_the_lab(tmp_path):
    with pytest.raises(ConfigError):
        run_lab([fake("a", fail=ConfigError("bad option"))], tmp_path)
    with pytest.raises(ConfigError, match="at least 1"):
        run_lab([fake("a")], tmp_path, seeds=0)


def test_the_page_shows_every_verdict_a_figure_each_and_what_did_not_run(tmp_path):
    chosen = [fake("a", 1.0), fake("b", -2.0), fake("c", fail=RuntimeError("broken"))]
    results = run_lab(chosen, tmp_path)
    html = render_page(chosen, results)
    assert html.count('class="badge holds"') == 2  # the table and the section
    assert html.count('class="badge fails"') == 2
    assert html.count("data:image/png;base64,") == 2
    assert "RuntimeError: broken" in html
    assert "http://" not in html and "https://" not in html  # self-contained


def test_a_figure_that_fails_is_a_note_not_a_lost_page(tmp_path):
    broken = fake("a")
    broken = Experiment(**{**broken.__dict__, "figure": lambda m: 1 / 0})
    html = render_page([broken], run_lab([broken], tmp_path))
    assert "the figure could not be drawn: ZeroDivisionError" in html


def test_the_registry_holds_every_module_once_with_unique_names():
    found = experiments()
    assert len(found) == len(MODULES)
    assert len({e.name for e in found}) == len(found)
    for e in found:
        assert e.claim and e.setup and e.rule and e.section.startswith("§")
    with pytest.raises(ConfigError, match="no experiment named 'nope'"):
        experiments(["nope"])


def test_a_mistyped_experiment_is_told_the_name_it_is_close_to():
    """A typo ('translaton') is told the name to type, as the commands' typos are."""
    with pytest.raises(ConfigError, match="'translaton'; did you mean translation\\?; the lab"):
        experiments(["translation", "translaton"])
    assert [e.name for e in experiments(["translation"])] == ["translation"]


def test_an_interrupted_lab_command_writes_the_page_of_what_finished(tmp_path, monkeypatch):
    """`cnnlab lab` wrote lab.html at the end only: Ctrl-C after hours left results.json and
    no page. Now the page shows the finished experiments, and the exit is still 130."""
    import cnnlab.lab
    from cnnlab.cli import main

    chosen = [fake("a", value=2.5), fake("b", fail=KeyboardInterrupt())]
    monkeypatch.setattr(cnnlab.lab, "experiments", lambda names=None: chosen)
    assert main(["lab", "--out", str(tmp_path), "--quick"]) == 130
    page = (tmp_path / "lab.html").read_text()
    assert "value was 2.5" in page and sorted(load_results(tmp_path).experiments) == ["a"]


@pytest.mark.parametrize(
    ("quick", "seeds", "noted"), [(False, 1, True), (False, 2, False), (True, 1, False)]
)
def test_a_full_lab_of_one_seed_says_no_spread_was_measured(tmp_path, quick, seeds, noted):
    """`--seeds 1` showed '± 0.0' everywhere with no word (the quick lab has its own note)."""
    chosen = [fake("a")]
    html = render_page(chosen, run_lab(chosen, tmp_path, quick=quick, seeds=seeds))
    assert ('id="one-seed-note"' in html) == noted
