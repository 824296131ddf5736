"""`cnnlab --help` lists the commands in workflow order (try it, data, architecture, train,
score and use a run, look inside, then the wider tools), not by module file name."""

from __future__ import annotations

from cnnlab.cli import _parser

ORDER = [
    "demo", "data", "summary", "train", "eval", "predict", "explain", "visualize",
    "diagnose", "probe", "report", "serve", "lab", "import",
]  # fmt: skip


def test_help_lists_the_commands_in_workflow_order(capsys):
    parser = _parser()
    parser.print_help()
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert listed == ORDER


def test_the_choices_follow_the_same_order():
    """argparse's 'invalid choice: ... (choose from ...)' reads the choices' order."""
    choices = _parser()._subparsers._group_actions[0].choices
    assert list(choices) == ORDER


def test_the_help_ends_with_a_first_command_that_parses(capsys):
    """`cnnlab --help` closes with where to start; the command it names parses as written."""
    import re
    import shlex

    parser = _parser()
    parser.print_help()
    start = re.search(r"`cnnlab ([^`]+)`", capsys.readouterr().out.split("options:")[-1])
    assert start, "cnnlab --help names no command to start with"
    args = parser.parse_args(shlex.split(start.group(1)))
    assert args.command == "demo"
