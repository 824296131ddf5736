"""The full lab's stored results (tests/data/lab_full_results.json: `cnnlab lab --seeds 3`, the
run BENCHMARKS.md reports): every verdict follows from its own measurements by its rule (the
rules are pure functions, so judging the stored numbers again must give the stored verdict),
and the page drawn from them is looked at in Debian's headless Chromium, screenshot kept in
test-artifacts/lab-full.png."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser import need_chromium
from cnnlab.lab import OUTCOMES, experiments
from cnnlab.lab.experiment import seed_count
from cnnlab.lab.page import write_page
from cnnlab.lab.runner import load_results
from test_lab_quick import look_at

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lab-full")
    shutil.copy(STORED, out / "results.json")
    return out


def test_the_full_lab_ran_every_experiment_on_three_seeds(full):
    results = load_results(full)
    assert results.quick is False and results.seeds == [0, 1, 2]
    assert list(results.experiments) == [e.name for e in experiments()]


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
def test_each_stored_verdict_follows_from_its_numbers(experiment):
    """The outcome the run stored (read from the file itself: load_results judges every entry
    again, so comparing with it compared today's rule with itself) is today's rule's on the
    same measurements, unless the rule was revised since and the page says the full lab's
    verdict went from the one to the other."""
    entry = json.loads(STORED.read_text())["experiments"][experiment.name]
    stored, again = entry["verdict"]["outcome"], experiment.judge(entry["measurements"]).outcome
    assert again in OUTCOMES
    changed = f"the full lab's verdict went from '{stored}' to '{again}'"
    assert again == stored or changed in experiment.revised, (stored, again, experiment.revised)


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
def test_each_verdict_sentence_states_the_numbers_it_rests_on(full, experiment):
    """The sentence, not only the table, carries the measured figures and on how many of
    the seeds each check held ("... on 2 of 3 seeds", "over 3 seeds")."""
    entry = load_results(full).experiments[experiment.name]
    meaning = experiment.judge(entry["measurements"]).meaning
    n = len(entry["measurements"]["seeds"])
    assert len(re.findall(r"\d+(?:\.\d+)?", meaning)) >= 4, meaning
    assert re.search(rf"\b(of|over|each of) {n} seeds", meaning), meaning


@pytest.mark.parametrize("experiment", experiments(), ids=lambda e: e.name)
def test_a_sentence_on_one_seed_says_seed(full, experiment):
    """The quick lab runs one seed: the stored measurements cut to their first seed give a
    sentence that counts "1 seed", never "1 seeds" (it used to say "on 1 of 1 seeds")."""
    measurements = dict(load_results(full).experiments[experiment.name]["measurements"])
    measurements["seeds"] = measurements["seeds"][:1]
    meaning = experiment.judge(measurements).meaning
    assert re.search(r"\b(of|over|each of) 1 seed\b", meaning), meaning
    assert not re.search(r"\b1 seeds\b", meaning), meaning


def test_seed_count_is_singular_for_one():
    assert [seed_count(n) for n in (1, 2, 3)] == ["1 seed", "2 seeds", "3 seeds"]


def test_the_spatial_sentence_gives_both_drops_with_their_spread(full):
    """Truth: numpy's mean and sample standard deviation of the stored per-seed drops."""
    entry = load_results(full).experiments["spatial"]
    rows = entry["measurements"]["seeds"]
    meaning = experiments_by_name()["spatial"].judge(entry["measurements"]).meaning
    for model in ("mlp", "cnn"):
        drops = np.array([r[model] - r[f"{model}_permuted"] for r in rows])
        assert f"{drops.mean():.1f} ± {drops.std(ddof=1):.1f}" in meaning


def experiments_by_name() -> dict:
    return {e.name: e for e in experiments()}


@pytest.mark.slow
def test_full_lab_page_renders_in_chromium(full, tmp_path):
    need_chromium()
    page = write_page(full, experiments(), load_results(full))
    seen, shot = look_at(page, "lab-full.png", tmp_path)
    names = [e.name for e in experiments()]
    assert seen["sections"] == names and len(seen["badges"]) == len(names)
    assert len(seen["images"]) == len(names) and all(w > 0 for w in seen["images"])
    assert seen["scrollWidth"] <= seen["innerWidth"]
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_the_readme_table_is_the_stored_lab_judged_by_todays_rules(full):
    """README's full-lab table (one row per experiment: verdict and sentence) is what judging
    the stored measurements with the current rules gives, so a rule or sentence changed in
    code cannot leave the README describing another lab."""
    assert_table_is_judged("README.md", full)


def test_the_benchmarks_verdict_table_is_the_stored_lab_judged_by_todays_rules(full):
    """The same for BENCHMARKS.md's lab section: its verdict table, row for row; and no
    other row of that section names an experiment with another verdict."""
    section = assert_table_is_judged("BENCHMARKS.md", full, section="## The lab")
    results = load_results(full)
    for experiment in experiments():
        verdict = experiment.judge(results.experiments[experiment.name]["measurements"])
        for line in section:
            if line.startswith(f"| `{experiment.name}` |"):
                assert line.split(" | ")[1] == verdict.outcome, line


def assert_table_is_judged(doc: str, full: Path, section: str | None = None) -> list[str]:
    """Every experiment's row `| `name` | outcome | sentence |` in `doc` (within `section`, a
    level-2 heading, when given) is the stored measurements judged again; the lines read."""
    lines = (Path(__file__).parents[1] / doc).read_text(encoding="utf-8").splitlines()
    if section is not None:
        start = lines.index(section)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
        lines = lines[start:end]
    results = load_results(full)
    for experiment in experiments():
        verdict = experiment.judge(results.experiments[experiment.name]["measurements"])
        meaning = verdict.meaning.replace("|", "\\|")
        row = f"| `{experiment.name}` | {verdict.outcome} | {meaning} |"
        assert row in lines, f"{doc}'s row for {experiment.name}: {row}"
    return lines
