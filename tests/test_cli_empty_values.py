"""An empty value (`--data "$DATA"` with DATA unset) is a usage error naming the argument: a
path "" is the working directory, so `train --data ""` and `data ""` read it as an image
folder ('./lab1: empty class ...', after a note on stray files), and `--out ""` was told
that '.' is not empty."""

from __future__ import annotations

import pytest

from cnnlab.cli import main

CASES = [
    (["data", ""], "NAME"),
    (["train", "fast", "--data", "", "--out", "{tmp}/run"], "--data"),
    (["train", "fast", "--out", ""], "--out"),
    (["diagnose", "{tmp}/run", "--data", " "], "--data"),
    (["summary", ""], "SPEC|PRESET"),
    (["predict", "{tmp}/run", ""], "IMAGE"),
    (["explain", "{tmp}/run", "a.png", "--layer", ""], "--layer"),
    (["serve", "{tmp}/run", "--host", ""], "--host"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_an_empty_value_is_one_line_naming_the_argument(tmp_path, monkeypatch, capsys, argv, named):
    (tmp_path / "lab1").mkdir()  # what reading the working directory as data found
    (tmp_path / "stray.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main([a.format(tmp=tmp_path) for a in argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"cnnlab {argv[0]}: error: argument {named}: empty value; give it one (an unset shell "
        f"variable?) (see cnnlab {argv[0]} --help)"
    ]
    assert not (tmp_path / "run").exists()
