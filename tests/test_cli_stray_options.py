"""Options alone on the command line, none of them cnnlab's (`cnnlab --versoin`), are one line
naming them as unrecognized, with the nearest option; argparse's own check told them that a
command is required, which says nothing of the typo."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


@pytest.mark.parametrize(
    ("argv", "named", "meant"),
    [
        (["--versoin"], "--versoin", "--version"),
        (["--verison"], "--verison", "--version"),
        (["--version=1"], None, None),  # argparse's own: --version takes no value
        (["-V"], "-V", None),
        (["--epochs", "2"], None, None),  # a word that is no option: argparse's own message
    ],
)
def test_options_alone_are_named(capsys, argv, named, meant):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cnnlab: error: ")
    assert "Traceback" not in line
    if named:
        assert f"unrecognized arguments: {named}" in line, line
        assert "required: COMMAND" not in line
    assert ("did you mean" in line) == (meant is not None), line
    if meant:
        assert f"did you mean {meant}? (see cnnlab --help)" in line


def test_a_known_option_alone_still_works(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "COMMAND" in capsys.readouterr().out
