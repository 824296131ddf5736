"""A training refused before it wrote anything leaves no directory it made: a mistyped preset
or data set with `--out runs/x` removed x and left an empty `runs/` behind."""

import pytest

from cnnlab.cli import main


@pytest.mark.parametrize(
    "argv", [["fsat", "--data", "digits"], ["--preset", "fast", "--data", "digts"]]
)
def test_a_refused_training_leaves_no_directory_it_made(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *argv, "--out", "runs/deep/x"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_parent_that_holds_something_else_stays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    assert main(["train", "fsat", "--out", "runs/x"]) == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["notes.txt"]
