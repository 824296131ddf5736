"""Usage errors name what is wrong and the command whose --help lists the right options, and
every sub-command's --help says what the command does and what each argument is."""

from __future__ import annotations

import argparse

import pytest

from cnnlab.cli import _parser, main


def _usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 2
    return capsys.readouterr().err.strip()


def test_an_unknown_option_of_train_is_named_not_a_spec_clash(capsys, tmp_path):
    # argparse hands "6000" to the free spec positional: once read as a clash with --preset
    err = _usage_error(
        capsys, "train", "--preset", "fast", "--limit", "6000", "--out", str(tmp_path / "r")
    )
    assert err == "cnnlab train: error: unrecognized arguments: --limit (see cnnlab train --help)"
    assert not (tmp_path / "r").exists()


def test_resume_and_force_together_are_refused(capsys, tmp_path):
    # both resumed the run without a word: --force (start again) was ignored
    err = _usage_error(capsys, "train", "--resume", "--force", "--out", str(tmp_path / "r"))
    assert err.startswith("cnnlab train: error: argument --force: not allowed with argument")
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["eval", "explain", "predict", "probe", "diagnose", "report"])
def test_an_unknown_option_points_at_the_commands_own_help(capsys, tmp_path, command):
    err = _usage_error(capsys, command, str(tmp_path), "--bogus", "3")
    assert err.startswith(f"cnnlab {command}: error: unrecognized arguments: --bogus")
    assert err.endswith(f"(see cnnlab {command} --help)")


@pytest.mark.parametrize("other", [["--preset", "fast"], ["--model", "net.py:make"]])
def test_a_spec_with_a_preset_or_model_is_one_clear_error(capsys, tmp_path, other):
    code = main(["train", "my.yaml", *other, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"cnnlab train: error: give the spec file 'my.yaml' or {other[0]}, not both"


# Every sub-command's `--help` says what the command does and what each argument is (argparse
# prints no line for a command without a description, none for an argument without help:
# `cnnlab eval --help` listed `--split {train,test}` and nothing else).


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


def test_an_unknown_option_before_the_command_is_the_programs(capsys, tmp_path):
    err = _usage_error(capsys, "--foo", "eval", str(tmp_path))
    assert err == "cnnlab: error: unrecognized arguments: --foo (see cnnlab --help)"
