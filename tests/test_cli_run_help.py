"""Every command that takes a RUN says, in its --help, that a run is written by `cnnlab train`
or `cnnlab import`: diagnose, report and serve said `cnnlab train` alone, and an imported
run is as much a run to them (eval, predict, explain, visualize and probe said neither)."""

from __future__ import annotations

import argparse

from cnnlab.cli import _parser


def _run_positionals() -> dict[str, argparse.Action]:
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: action
        for name, command in commands.choices.items()
        for action in command._actions
        if action.dest == "run_dir"
    }


def test_every_run_argument_names_both_commands_that_write_a_run():
    runs = _run_positionals()
    assert {"eval", "predict", "explain", "diagnose", "report", "serve"} <= set(runs)
    for name, action in runs.items():
        assert "`cnnlab train`" in action.help and "`cnnlab import`" in action.help, name


def test_help_prints_it(capsys):
    from cnnlab.cli import main

    try:
        main(["diagnose", "--help"])
    except SystemExit as done:
        assert done.code == 0
    assert "`cnnlab import`" in " ".join(capsys.readouterr().out.split())
