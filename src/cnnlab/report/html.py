"""One self-contained HTML page per run: `facts.gather` learns what to show from library
calls, `show.page` draws it with one template. Images are inline PNG data URIs; the page
loads nothing from anywhere (its Content-Security-Policy forbids it).

A part that cannot be made (no weights, no metrics, no test data) becomes a note saying what
is missing, and the rest of the page is still written; `strict=True` raises instead, so that a
test fails where a library call broke rather than finding its error printed in the page.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.errors import CnnlabError, RunError
from cnnlab.inspect.progress import Progress
from cnnlab.report import show
from cnnlab.report.facts import gather
from cnnlab.report.sources import Budget
from cnnlab.train.checkpoint import atomic_write
from cnnlab.train.run import check_is_run, missing_weights
from cnnlab.train.rundir import CONFIG, MODEL_WEIGHTS, SPEC, Run, load_run, read_config

REQUIRED = (SPEC, CONFIG)  # without these a directory is not a run


def check_run(path: str | Path) -> Path:
    """`path` as a Path if it is a run directory; RunError saying why not. Creates nothing (a
    typo stays a typo, not a new empty directory); reads config.json only when spec.yaml is
    missing, to see whether the model comes from code. A directory with none of a run's files
    is told what `load_run` tells it (`runs/` names its runs); it was told 'spec.yaml and
    config.json missing', as an incomplete run."""
    path = Path(path)
    hint = "pass a run directory written by `cnnlab train` or `cnnlab import`"
    if not path.exists():
        raise RunError(f"{path} does not exist; {hint}")
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a directory; {hint}")
    check_is_run(path)  # none of a run's files: no run, or a directory of runs named, as load_run
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing == [SPEC] and _from_code(path):
        missing = []  # a model from the user's code (`--model file.py:factory`) has no spec
    if missing:
        raise RunError(f"{path} is not a run directory: {' and '.join(missing)} missing; {hint}")
    return path


def _from_code(path: Path) -> bool:
    record = read_config(path).get("model")
    return isinstance(record, dict) and record.get("kind") not in (None, "spec")


def open_run(path: str | Path, data: str | Path | None = None) -> tuple[Run | None, str | None]:
    """(Run, None) or (None, why there is no model: its weights are not written yet).
    RunError when `path` is not a run (`check_run`), or when `load_run` rejects it (e.g.
    weights not matching the spec). data: where the run's image folder is now, if moved
    (`Run.with_data`)."""
    path = check_run(path)
    if not (path / MODEL_WEIGHTS).is_file():
        return (
            None,
            f"{path / MODEL_WEIGHTS} is missing: {missing_weights(path, read_config(path))}",
        )
    run = load_run(path)
    return (run if data is None else run.with_data(data)), None


def render(
    path: str | Path,
    budget: Budget | None = None,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    data: str | Path | None = None,
    missing: list[tuple[str, str]] | None = None,
) -> tuple[str, dict[str, float]]:
    """The report's HTML for run directory `path`, and timings {section: seconds}.
    strict: raise where a part cannot be made instead of writing a note into the page.
    progress: the parts gathered (`gather`). data: the run's image folder, if moved.
    missing: receives (part title, note) of each part not shown (`show.page`)."""
    path = Path(path)
    run, no_run = open_run(path, data)
    facts = gather(path, run, no_run, budget, strict=strict, progress=progress)
    return show.page(facts, strict=strict, missing=missing)


def report_path(path: str | Path, out: str | Path | None = None) -> Path:
    """Where the report goes: RUN/report.html (nothing is created: RUN is checked to exist by
    `write_report`), or `out` (a .html/.htm file, or a directory to hold report.html), whose
    directory is created. CnnlabError when it cannot be, or when `out` is a file name not
    ending in .html/.htm: refused whether or not it exists, so the same command does the same
    thing twice and never replaces a file that is not a page (`--out mynet.py`)."""
    if out is None:
        return Path(path) / "report.html"
    target = Path(out).expanduser()
    if target.is_dir() or str(out).endswith(("/", os.sep)):  # `--out reports/`: a directory
        target = target / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        page = target.with_suffix(".html")
        if target.exists():  # a file: never replaced by the page
            fix = f"give --out {page}"
        else:
            fix = f"give --out {page}, or --out {target}/ for a directory to hold report.html"
        raise CnnlabError(
            f"--out {target} does not end in .html and the report is an HTML page; {fix}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CnnlabError(
            f"cannot create {target.parent} for the report ({error.strerror}); choose another --out"
        ) from error
    return target


def write_report(
    path: str | Path,
    out: str | Path | None = None,
    budget: Budget | None = None,
    timings: dict | None = None,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    data: str | Path | None = None,
    missing: list[tuple[str, str]] | None = None,
) -> Path:
    """Write `RUN/report.html` (or `out`, see `report_path`) for the run directory `path`;
    return its path. `timings`, if given, receives {section: seconds}. The page is written
    whole or not at all (a temporary file renamed over the old page). progress: the parts
    gathered, progress(done, parts, part's name) (`gather`). data: where the run's image
    folder is now, if moved since training (`Run.with_data`). missing: receives (part title,
    note) of each part the page does not show, for the caller to say (`show.page`)."""
    check_run(path)  # first, and creating nothing: a mistyped RUN leaves no trace
    target = report_path(path, out)  # before the costly part: a bad --out fails at once
    html, spent = render(path, budget, strict=strict, progress=progress, data=data, missing=missing)
    if timings is not None:
        timings.update(spent)
    try:  # the run's writer: its temp file is one the run's cleanup knows (`temp_files`)
        atomic_write(target, html.encode("utf-8"))
    except RunError as error:
        reason = getattr(error.__cause__, "strerror", None) or str(error)
        raise CnnlabError(
            f"cannot write the report to {target} ({reason}); write it elsewhere with --out FILE"
        ) from error
    return target
