"""The help texts as a new user reads them. Truth: the parser's own list of commands and
options, and what the code reading each option does."""

from __future__ import annotations

import re

import pytest

from cnnlab.cli import _parser, main


def commands() -> dict:
    return _parser()._subparsers._group_actions[0].choices


def help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [60, 80, 100, 160])
def test_every_command_has_its_help_on_its_own_line(columns, capsys, monkeypatch):
    """`cnnlab --help` at any terminal width: each command's name is followed on its line by
    its help (argparse put visualize's on the next line, its name measured two columns
    short), and all helps start in one column."""
    monkeypatch.setenv("COLUMNS", str(columns))
    lines = help_of([], capsys).splitlines()
    starts = set()
    for name in commands():
        line = next((x for x in lines if re.match(rf"    {re.escape(name)}\b", x)), None)
        assert line is not None, name
        match = re.match(rf"    {re.escape(name)}( +)(\S)", line)
        assert match, f"{name}: its help is not on its line: {line!r}"
        starts.add(match.start(2))
    assert len(starts) == 1
