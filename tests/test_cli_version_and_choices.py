"""`cnnlab --version` prints the installed version (it was 'the following arguments are
required: COMMAND'), and a mistyped choice (`cnnlab trian`, `--split tset`) ends its one line
with the choice it likely means, as a mistyped preset or data set does."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from cnnlab.cli import main


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"cnnlab {version('cnnlab')}\n"


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["trian", "fast"], "train"),
        (["sumary", "fast"], "summary"),
        (["eval", "RUN", "--split", "tset"], "test"),
        (["explain", "RUN", "a.png", "--method", "gradcma"], "gradcam"),
        (["explain", "RUN", "a.png", "--method", "lime"], None),
    ],
)
def test_a_mistyped_choice_is_told_the_nearest(capsys, argv, meant):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "invalid choice" in line
    assert ("did you mean" in line) == (meant is not None)
    if meant:
        assert f"); did you mean {meant}? (see cnnlab" in line


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["train", "fast", "--out", "r", "--epcohs", "1"], "--epochs"),
        (["predict", "RUN", "a.png", "--topk", "3"], "--top"),
        (["summary", "fast", "--jsn"], "--json"),
        (["train", "fast", "--out", "r", "--batchsize=8"], "--batch-size"),
        (["summary", "fast", "--zzz"], None),
        (["--verbose", "summary", "fast"], None),  # not --version: too far (difflib 0.67)
    ],
)
def test_a_mistyped_option_is_told_the_nearest(capsys, argv, meant):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "unrecognized arguments" in line
    assert ("did you mean" in line) == (meant is not None), line
    if meant:
        assert f"; did you mean {meant}? (see cnnlab" in line
