"""A quick lab's page says at every verdict that it is a smoke run: one seed, so a "± 0.0" is
no spread measured, and a quick verdict can differ from the full lab's (parameters: "does not
hold" on the quick lab's 2,000 images, "holds" in the full lab). Truth: the stored full lab's
entries rendered as a quick and as a full lab."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.lab import experiments
from cnnlab.lab.page import render_page
from cnnlab.lab.runner import LabResults

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def page(quick: bool) -> str:
    stored = json.loads(STORED.read_text())["experiments"]
    chosen = experiments(["floor", "parameters"])
    kept = {e.name: stored[e.name] for e in chosen}
    return render_page(chosen, LabResults(quick, [0] if quick else [0, 1, 2], kept))


def test_a_quick_page_marks_every_verdict_as_quick():
    html = page(True)
    assert 'id="quick-note"' in html and "no spread measured" in html
    assert html.count("quick, 1 seed") == 2  # the table: one per experiment
    assert html.count("(quick lab, 1 seed: a smoke run)") == 2  # each section's verdict


def test_a_full_page_does_not():
    html = page(False)
    assert "quick-note" not in html and "quick, 1 seed" not in html and "smoke run" not in html


def test_a_rule_revised_after_results_were_seen_says_so_in_its_own_section():
    """Softmax's rule changed after a quick run had been seen: its section says so; floor's and
    parameters' sections do not carry another experiment's revision."""
    stored = json.loads(STORED.read_text())["experiments"]
    chosen = experiments(["floor", "softmax"])
    html = render_page(
        chosen, LabResults(False, [0, 1, 2], {e.name: stored[e.name] for e in chosen})
    )
    floor, softmax = html.split('<section id="floor">')[1].split('<section id="softmax">')
    assert "revised after a quick run had been seen" in softmax
    assert "revised" not in floor


def test_the_page_says_what_each_outcome_means_under_the_verdicts():
    """Four badges and no key: the table is followed by one line giving each outcome's reading
    in its own badge colour. Truth: OUTCOMES, the outcomes a Verdict accepts."""
    from html import unescape

    from cnnlab.lab import OUTCOMES
    from cnnlab.lab.page import BADGE, READING

    html = page(False)
    key = unescape(html.split('<p class="muted" id="reading">')[1].split("</p>")[0])
    assert set(READING) == set(OUTCOMES) == set(BADGE)
    for outcome in OUTCOMES:
        badge = f'<span class="badge {BADGE[outcome]} key">{outcome}</span> {READING[outcome]}'
        assert badge in key, key
    assert html.index('id="verdicts"') < html.index('id="reading"') < html.index("<main>")


def test_every_figure_has_a_caption_saying_what_it_shows():
    """A figure under a verdict had 'Measured in 5.3 s' for a caption: which panel is what, and
    where to look, was left to the axis labels. Every registered experiment's caption is in
    its own section's figcaption. Truth: the registry and the stored full lab."""
    from html import unescape

    stored = json.loads(STORED.read_text())["experiments"]
    chosen = experiments()
    html = unescape(render_page(chosen, LabResults(False, [0, 1, 2], stored)))
    for e in chosen:
        assert len(e.caption) > 80, e.name
        section = html.split(f'<section id="{e.name}">')[1].split("</section>")[0]
        caption = section.split("<figcaption>")[1].split("</figcaption>")[0]
        assert e.caption in caption and "Measured in" in caption, e.name
