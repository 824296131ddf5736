"""`--data DIR` of the commands that read a run's test images: where the run's image folder
is now, after a move or on another machine (config.json records it by its absolute path)."""

from __future__ import annotations

import argparse

# RUN of every command that reads a run: a training's --out or an import's
RUN_HELP = "a run directory (written by `cnnlab train` or `cnnlab import`)"


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="the run's image folder where it is now, if moved since training (the same "
        "classes and files: its test hold-out is checked)",
    )


def load_run_at(path: str, data: str | None):
    """load_run(path), reading its image folder from `data` when given (`Run.with_data`)."""
    from cnnlab.train.rundir import load_run

    run = load_run(path)
    return run if data is None else run.with_data(data)
