"""An image folder's reading reports progress where a run's data is read: `import_run` (and
`cnnlab import`, whose bar drew only the evaluation: a folder of phone photos reads at 0.1 to
1.4 s an image, minutes with nothing said) and `Run.dataset(split, progress=)`. Truth: the
files the folder holds, counted here, and the split `load_splits` returns."""

from __future__ import annotations

import io
import textwrap

import pytest
from rich.console import Console

from cnnlab.cli import main
from cnnlab.cli import progress as cli_progress
from cnnlab.data import load_splits
from cnnlab.train import checkpoint, load_run
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref
from folder_images import save

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = textwrap.dedent(
    """
    from torch import nn

    def make():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
        )
    """
)


@pytest.fixture
def made(tmp_path):
    data = tmp_path / "imgs"
    for c in ("cat", "dog"):
        for i in range(10):
            save(data / c / f"{i}.png", 20 * i + (c == "dog"))
    code = tmp_path / "f.py"
    code.write_text(CODE)
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, parse_model_ref(f"{code}:make").build().state_dict())
    return data, code, weights


def _reading(calls):
    """(done, total) of each 'reading images' call, the reading's own."""
    return [(done, total) for done, total, what in calls if what == "reading images"]


def test_import_run_reports_both_splits_read_then_evaluates(made, tmp_path):
    data, code, weights = made
    calls = []
    progress = lambda *call: calls.append(call)  # noqa: E731
    import_run(parse_model_ref(f"{code}:make"), weights, tmp_path / "run", data, progress=progress)
    train, test = load_splits(data)
    ends = [total for done, total in _reading(calls) if done == total]
    assert ends[:2] == [len(train), len(test)] and len(train) + len(test) == 20
    assert calls[0][2] == "reading images" and calls[-1][2] != "reading images"  # then scored


def test_run_dataset_passes_its_progress_on(made, tmp_path):
    data, code, weights = made
    out = tmp_path / "run"
    import_run(parse_model_ref(f"{code}:make"), weights, out, data)
    calls = []
    test = load_run(out).dataset("test", progress=lambda *call: calls.append(call))
    assert _reading(calls)[0] == (0, len(test)) and _reading(calls)[-1] == (len(test), len(test))


def test_the_import_command_draws_the_reading(made, tmp_path, monkeypatch, capsys):
    data, code, weights = made
    drawn = io.StringIO()
    console = lambda: Console(file=drawn, force_terminal=True, width=120)  # noqa: E731
    monkeypatch.setattr(cli_progress, "_console", console)
    argv = ["import", "--model", f"{code}:make", "--weights", str(weights), "--data", str(data)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert "reading images" in drawn.getvalue()
