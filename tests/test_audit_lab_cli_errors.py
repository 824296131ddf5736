"""`cnnlab lab` refusing bad options the way every command does: one line on stderr, exit 2,
no traceback, before any experiment runs."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "-2"], "--threads"),
        (["--out", "{file}"], "not a directory"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(args, says, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a lab")
    args = [a.format(file=a_file) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "lab")]
    code = main(["lab", "--quick", "--only", "floor", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and says in err
    assert len(err.strip().splitlines()) == 1, err
    assert a_file.read_text() == "not a lab"
