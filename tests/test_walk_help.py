"""Every sub-command's `--help` says what the command does and what each argument is
(argparse prints no line for a command without a description, none for an argument without
help: `cnnlab eval --help` listed `--split {train,test}` and nothing else)."""

import argparse

from cnnlab.cli import _parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    return _parser()._subparsers._group_actions[0].choices


def test_every_command_has_a_description():
    assert [name for name, p in _commands().items() if not p.description] == []


def test_every_argument_has_help():
    missing = [
        f"{name} {action.dest}"
        for name, p in _commands().items()
        for action in p._actions
        if action.help is None
    ]
    assert missing == []


def test_the_description_is_printed_by_help():
    text = _commands()["eval"].format_help()
    assert "accuracy, per-class accuracy and confusion matrix" in text
