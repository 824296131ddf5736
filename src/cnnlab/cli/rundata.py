"""`--data DIR` of the commands that read a run's test images: where the run's image folder
is now, after a move or on another machine (config.json records it by its absolute path)."""

from __future__ import annotations

import argparse
import sys

# RUN of every command that reads a run: a training's --out or an import's
RUN_HELP = "a run directory (written by `cnnlab train` or `cnnlab import`)"


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="the run's image folder where it is now, if moved since training (the same "
        "classes and files: its test hold-out is checked)",
    )


def load_run_at(path: str, data: str | None = None):
    """load_run(path), reading its image folder from `data` when given (`Run.with_data`).
    A run whose model code changed since, opened with that accepted, says so on stderr."""
    from cnnlab.train.rundir import load_run

    run = load_run(path)
    if note := changed_code_note(run):
        print(f"note: {note}", file=sys.stderr)
    return run if data is None else run.with_data(data)


def changed_code_note(run) -> str:
    """What `CNNLAB_ACCEPT_CHANGED_CODE=1` let through for `run`: its model built from a file
    whose SHA-256 is not the one recorded; "" when the file is as recorded (or no code)."""
    source = getattr(run, "source", None)  # a Run; tests hand the commands stand-ins
    if source is None or source.kind != "code":
        return ""
    then = run.config.get("model", {}).get("sha256")
    if then is None or then == source.sha256:
        return ""
    made = "imported" if "imported" in run.config else "trained"
    return (
        f"{run.path}: {source.file} has changed since the run was {made} (sha256 {then[:12]} "
        f"then, {source.sha256[:12]} now); the model is built from it as it is now "
        "(CNNLAB_ACCEPT_CHANGED_CODE=1), so it may not be the network the weights were "
        f"{made} as"
    )
