"""Run experiments one after another, saving each finished one to DIR/results.json at once.

results.json (written atomically after every experiment, so an interrupted lab loses at most
the experiment it was in)::

    {"quick": true, "seeds": [0],
     "experiments": {"spatial": {"title": ..., "verdict": {outcome, numbers, meaning},
                                 "measurements": {...}, "seconds": 9.1, "finished": "..."}}}

A finished experiment is not rerun: `resume=True` keeps what DIR holds and runs the rest;
`rerun` names experiments to run again (and implies resume). Without either, a DIR that already
holds results is refused, so a long run is never overwritten by accident. A rule is judged on
the measurements as read back from JSON, so a re-rendered page judges exactly what was stored.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.lab.experiment import Context, Experiment, Verdict
from cnnlab.lab.registry import experiments as registered
from cnnlab.train.checkpoint import write_json

RESULTS = "results.json"


@dataclass
class LabResults:
    """What results.json holds: the settings and one entry per finished experiment."""

    quick: bool
    seeds: list[int]
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # name -> last line of the error

    def verdict(self, name: str) -> Verdict:
        return Verdict.from_dict(self.experiments[name]["verdict"])

    def to_dict(self) -> dict[str, Any]:
        # "stale" is how this reading judged an entry (`_judge_again`), not what the lab ran
        kept = {
            k: {f: v for f, v in e.items() if f != "stale"} for k, e in self.experiments.items()
        }
        return {"quick": self.quick, "seeds": self.seeds, "experiments": kept}


def load_results(out: str | Path) -> LabResults | None:
    """DIR/results.json as LabResults, None when there is none (RunError when unreadable).
    Each registered experiment's stored measurements are judged again by today's rule."""
    path = Path(out) / RESULTS
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
        results = LabResults(bool(d["quick"]), list(d["seeds"]), dict(d["experiments"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(
            f"{path} is not a lab's results file ({error}); use another --out"
        ) from error
    for name, entry in results.experiments.items():
        if missing := _missing(entry):
            raise RunError(
                f"{path}: experiment {name!r} has no {missing}, as the lab writes each; "
                "use another --out, or delete that entry to run it again"
            )
    _judge_again(results)
    return results


def _missing(entry: Any) -> str | None:
    """The first field a finished experiment's entry lacks (the table and page read them: an
    entry without 'seconds' was a KeyError traceback after the lab had run), else None."""
    if not isinstance(entry, dict):
        return "entry (a JSON object)"
    for key, kind in (("verdict", dict), ("measurements", dict), ("seconds", (int, float))):
        if not isinstance(entry.get(key), kind):
            return repr(key)
    for key in ("outcome", "numbers", "meaning"):
        if key not in entry["verdict"]:
            return f"verdict {key!r}"
    return None


def _judge_again(results: LabResults) -> None:
    """Replace each stored verdict of a registered experiment by its rule's judgement today.
    A rule revised since the lab ran (pooling's low-pass cut, heads' gap) left the page
    showing today's rule beside the old rule's verdict and sentence. Measurements an old
    version stored without a field today's rule reads keep their stored verdict."""
    for e in registered():
        entry = results.experiments.get(e.name)
        if entry is None:
            continue
        try:
            entry["verdict"] = e.judge(entry["measurements"]).to_dict()
            entry.pop("stale", None)
        except (LookupError, TypeError, ValueError, ArithmeticError):  # an older layout of
            # the measurements (a field today's rule reads is missing): the stored verdict
            # stays, marked, so the page does not show it under today's rule as its outcome
            entry["stale"] = True


def _start(out: Path, quick: bool, seeds: list[int], resume: bool) -> LabResults:
    old = load_results(out)
    if old is None or not old.experiments:
        return LabResults(quick, seeds)
    if not resume:
        raise RunError(
            f"{out / RESULTS} already holds {len(old.experiments)} finished experiment(s): "
            "add --resume to keep them (and --rerun NAME to redo some), or use another --out"
        )
    if (old.quick, old.seeds) != (quick, seeds):
        raise RunError(
            f"{out / RESULTS} was made with quick={old.quick}, seeds={old.seeds}, not "
            f"quick={quick}, seeds={seeds}: resume with the same options or use another --out"
        )
    return old


def run_lab(
    chosen: Sequence[Experiment],
    out: str | Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    resume: bool = False,
    rerun: Sequence[str] = (),
    threads: int = 1,
    on_start: Callable[[Experiment], None] | None = None,
    on_progress: Callable[[Experiment, float, float, str], None] | None = None,
    on_done: Callable[[Experiment, dict[str, Any] | None, str | None], None] | None = None,
) -> LabResults:
    """Run `chosen` (quick: one seed, tiny subsets), saving each as it ends; return all results.

    Experiments already in DIR/results.json are skipped when resuming, unless named in
    `rerun`. A bug in one experiment (an exception that is not a CnnlabError) is recorded in
    `LabResults.failed` with its last line and the lab goes on; it is not saved, so a resume
    runs it again. on_start/on_progress/on_done let a caller show progress (never printed here).
    threads: torch's intra-op threads while the lab runs (restored after). One, because the
    lab's nets are small: a 3-conv net's 2 epochs took 1.1 s of CPU on 1 thread against 9.3 s
    on 2 (OpenMP waiting on a loaded 2-core machine), the same accuracy.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a directory: choose a directory for the lab")
    seed_list = [0] if quick else list(range(seeds))
    results = _start(out, quick, seed_list, resume or bool(rerun))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a parent that is a file, no permission
        raise RunError(f"cannot make --out {out}: {error.strerror}") from error
    ctx = Context(seeds=tuple(seed_list), quick=quick)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for experiment in chosen:
            _one(experiment, ctx, results, out, rerun, on_start, on_progress, on_done)
    finally:
        torch.set_num_threads(before)
    return results


def _one(experiment, ctx, results, out, rerun, on_start, on_progress, on_done) -> None:
    """Run one experiment unless it is finished (and not named in rerun); save it at once."""
    if experiment.name in results.experiments and experiment.name not in rerun:
        return
    if on_start is not None:
        on_start(experiment)
    ctx.progress = _reporter(experiment, on_progress)
    entry, error = _run_one(experiment, ctx)
    if entry is not None:
        results.experiments[experiment.name] = entry
        results.failed.pop(experiment.name, None)
        write_json(out / RESULTS, results.to_dict())
    else:
        results.failed[experiment.name] = error
    if on_done is not None:
        on_done(experiment, entry, error)


def _reporter(experiment: Experiment, on_progress) -> Callable[[float, float, str], None]:
    def report(done: float, total: float, text: str = "") -> None:
        if on_progress is not None:
            on_progress(experiment, done, total, text)

    return report


def _run_one(experiment: Experiment, ctx: Context) -> tuple[dict | None, str | None]:
    """(entry, None) when it finished, (None, error line) when its code failed."""
    start = time.perf_counter()
    try:
        measured = experiment.measure(ctx)
        measured = json.loads(json.dumps(measured))  # judged as stored (and JSON-able)
        verdict = experiment.judge(measured)
    except CnnlabError:  # bad input (no data set, a bad option): the user must fix it
        raise
    except Exception as error:  # a bug in one experiment must not cost the others
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return None, last
    entry = {
        "title": experiment.title,
        "verdict": verdict.to_dict(),
        "measurements": measured,
        "seconds": round(time.perf_counter() - start, 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return entry, None
