"""A data name that is also a folder in the working directory (`--data shapes` beside
./shapes) reads cnnlab's named set; train and data say so and how to read the folder, where
the run went on silently to a channel or class error about another data set."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.cli.notes import print_name_note


def test_a_name_that_is_also_a_folder_here_is_noted(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes" / "a").mkdir(parents=True)
    print_name_note("shapes")
    err = capsys.readouterr().err
    assert err.strip() == (
        "note: --data shapes is cnnlab's shapes data set, not the folder shapes/ here; for the "
        "folder give --data ./shapes"
    )
    print_name_note("./shapes")  # the folder, said as a path: nothing to note
    print_name_note("digits")  # no folder of that name here
    print_name_note(None)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("one_thread")
def test_cnnlab_data_prints_the_note(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    assert main(["data", "digits"]) == 0
    assert "is cnnlab's digits data set, not the folder digits/" in capsys.readouterr().err
