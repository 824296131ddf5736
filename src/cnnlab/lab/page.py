"""DIR/lab.html: one self-contained page of the lab, the run report's style.

Verdict badges at the top, then one section per experiment: the claim and the notes' section,
the setup, the rule, the verdict with the numbers that decided it, the figure (an inline PNG
drawn again from the stored measurements), and the time it took. Nothing is fetched.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import matplotlib

from cnnlab.lab import registry
from cnnlab.lab.experiment import Experiment
from cnnlab.lab.runner import LabResults
from cnnlab.report.plots import STYLE
from cnnlab.train.checkpoint import atomic_write

PAGE = "lab.html"
BADGE = {  # outcome -> CSS class of its badge
    "holds": "holds",
    "does not hold": "fails",
    "partly": "partly",
    "inconclusive": "unclear",
}

# What each outcome means on every experiment, under the verdict table: a reader met four
# badges with no key (each rule below says exactly which checks it reads).
READING = {
    "holds": "every check of the rule passed (a check read per seed, on every seed)",
    "partly": "some of the rule's checks passed, others failed",
    "does not hold": "the checks that carry the claim failed",
    "inconclusive": "the seeds disagree, or an effect lies within the noise: no call either way",
}


def figure_uri(experiment: Experiment, measurements: dict) -> tuple[str | None, str | None]:
    """(PNG data URI, None), or (None, why) when the experiment's figure code fails."""
    try:
        with matplotlib.rc_context(STYLE):
            fig = experiment.figure(measurements)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
    except Exception as error:  # a broken figure must not cost the page
        return None, f"the figure could not be drawn: {type(error).__name__}: {error}"
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), None


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_number(v) for v in value)
    return str(value)  # the template escapes it


def _sections(experiments: Sequence[Experiment], results: LabResults) -> list[dict]:
    sections = []
    for e in experiments:
        entry = results.experiments.get(e.name)
        s = {"id": e.name, "e": e, "entry": entry, "error": results.failed.get(e.name)}
        if entry is not None:
            v = entry["verdict"]
            s["badge"] = BADGE[v["outcome"]]
            s["numbers"] = [(k, _number(x)) for k, x in v["numbers"].items()]
            s["figure"], s["figure_error"] = figure_uri(e, entry["measurements"])
        sections.append(s)
    return sections


def shown(experiments: Sequence[Experiment], results: LabResults) -> list[Experiment]:
    """`experiments`, and every registered one `results` holds that they leave out, in page
    order: the page is the lab's, not the last command's. `--only heads --resume` on a lab
    that held translation too wrote a page of heads alone (results.json kept both)."""
    chosen = list(experiments)
    names = {e.name for e in chosen}
    registered = registry.experiments()
    kept = [e for e in registered if e.name in results.experiments and e.name not in names]
    order = {e.name: i for i, e in enumerate(registered)}
    if kept and all(e.name in order for e in chosen):
        return sorted(chosen + kept, key=lambda e: order[e.name])
    return chosen + kept


def render_page(experiments: Sequence[Experiment], results: LabResults) -> str:
    """The page's HTML for `experiments` (those without a result say so) and every other
    registered experiment `results` holds."""
    start = time.perf_counter()
    experiments = shown(experiments, results)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlab.lab", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    sections = _sections(experiments, results)
    total = sum(s["entry"]["seconds"] for s in sections if s["entry"])
    return env.get_template("lab.html.j2").render(
        sections=sections,
        reading=[(BADGE[o], o, READING[o]) for o in BADGE],
        quick=results.quick,
        seeds=results.seeds,
        lab_seconds=total,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        render_seconds=time.perf_counter() - start,
    )


def write_page(out: str | Path, experiments: Sequence[Experiment], results: LabResults) -> Path:
    """Write DIR/lab.html atomically; return its path."""
    path = Path(out) / PAGE
    atomic_write(path, render_page(experiments, results).encode())
    return path
