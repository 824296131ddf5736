"""`cnnlab data FOLDER`, `cnnlab diagnose RUN [--data FOLDER]` and `cnnlab eval RUN` draw an
image folder's reading as a bar on a terminal (a folder of phone photos reads at 0.1-1.4 s an
image); piped, nothing is drawn and the output is what it was."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from cnnlab.cli import main
from cnnlab.cli import progress as cli_progress
from folder_images import save

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path):
    for c in ("cat", "dog"):
        for i in range(10):
            save(tmp_path / "imgs" / c / f"{i}.png", 20 * i + (c == "dog"))
    return tmp_path / "imgs"


@pytest.fixture
def screen(monkeypatch):
    drawn = io.StringIO()
    console = lambda: Console(file=drawn, force_terminal=True, width=120)  # noqa: E731
    monkeypatch.setattr(cli_progress, "_console", console)
    return drawn


def test_data_draws_the_reading_of_each_split(folder, screen, capsys):
    assert main(["data", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train"]["images"] + info["test"]["images"] == 20
    drawn = screen.getvalue()
    assert "reading images" in drawn
    assert f"{info['test']['images']}/{info['test']['images']}" in drawn  # the last split read


def folder_run(folder, tmp_path):
    """A tiny run trained on `folder`."""
    spec = {
        "name": "tiny",
        "input": [1, 6, 6],
        "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 2}],
    }
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    run = tmp_path / "run"
    args = [
        "train",
        str(tmp_path / "tiny.json"),
        "--data",
        str(folder),
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ]
    assert main([*args, "--out", str(run), "--quiet"]) == 0
    return run


def test_diagnose_draws_the_reading_of_data_before_its_passes(folder, screen, tmp_path, capsys):
    run = folder_run(folder, tmp_path)
    screen.truncate(0)
    capsys.readouterr()
    assert main(["diagnose", str(run), "--data", str(folder), "--split", "test", "--json"]) == 0
    drawn = screen.getvalue()
    assert drawn.index("reading images") < drawn.index("dead units")


@pytest.mark.parametrize("command", [["eval"], ["diagnose", "--json"]])
def test_a_runs_own_folder_is_drawn_as_it_is_read_again(folder, screen, tmp_path, command):
    run = folder_run(folder, tmp_path)
    screen.truncate(0)
    screen.seek(0)
    assert main([command[0], str(run), *command[1:]]) == 0
    assert "reading images" in screen.getvalue()
