"""A directory with none of a run's files is no run, not an incomplete one: `serve runs/`
(for runs/fast) was told 'has no config.json: it is not a complete run', which reads as a
run cut short. A directory of runs names them; a run that lost its config.json is still an
incomplete run."""

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import load_run


def test_an_empty_directory_is_no_run(tmp_path):
    with pytest.raises(RunError, match=r"is not a run directory \(no config.json\): give the"):
        load_run(tmp_path)


def test_a_directory_of_runs_names_them(tmp_path, capsys):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "photos").mkdir()
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a directory of runs, not a run: give one of them" in err, err
    assert f"({tmp_path / 'a'}, {tmp_path / 'b'})" in err and "photos" not in err


def test_a_run_without_its_config_is_an_incomplete_run(tmp_path):
    (tmp_path / "spec.yaml").write_text("input: [1, 8, 8]\nlayers: [flatten, {linear: 2}]\n")
    with pytest.raises(RunError, match="has no config.json: it is not a complete run"):
        load_run(tmp_path)


def test_report_says_what_the_other_commands_say(tmp_path, capsys):
    """`report runs/` was told 'spec.yaml and config.json missing', as an incomplete run,
    where eval, serve and diagnose name the runs inside."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a directory of runs, not a run: give one of them" in err, err
    assert main(["report", str(tmp_path / "a" / "empty")]) == 2  # missing: as before
    (tmp_path / "b").mkdir()
    assert main(["report", str(tmp_path / "b")]) == 2
    assert "is not a run directory (no config.json)" in capsys.readouterr().err
