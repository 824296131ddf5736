"""Progress of the long library loops and the CLI's bar: each loop calls
`progress(done, total, what)` with done rising by one up to total (counted independently here:
batches of the data, steps asked for, parts of the report); the CLI draws a bar on stderr only
when it is a terminal, so piped output is what it was."""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
import rich.progress
import torch
from rich.console import Console
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.cli import main
from cnnlab.cli import progress as cli_progress
from cnnlab.inspect.progress import batch_count

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}


class Calls:
    """A progress callback that records its calls, by what."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, what: str) -> None:
        self.calls.append((done, total, what))

    def by_what(self) -> dict[str, list[tuple[int, int]]]:
        found = defaultdict(list)
        for done, total, what in self.calls:
            found[what].append((done, total))
        return dict(found)


def assert_counts_up(calls: list[tuple[int, int]], total: int) -> None:
    """done is 0 (the loop starts), 1, 2, ..., total with the same total at every call."""
    assert [d for d, _ in calls] == list(range(total + 1))
    assert {t for _, t in calls} == {total}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One epoch of a tiny CNN on digits (1,437 train / 360 test 8×8 images): seconds."""
    from cnnlab.design.spec import load_spec
    from cnnlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(load_spec(TINY), "digits", out, TrainConfig(epochs=1, batch_size=128))
    return out


@pytest.fixture(scope="module")
def run(run_dir):
    from cnnlab.train.rundir import load_run

    return load_run(run_dir)


def test_batch_count_matches_the_batches_given():
    from cnnlab.inspect import batches

    x, y = torch.zeros(10, 1, 4, 4), torch.zeros(10, dtype=torch.long)
    listed = [(x[:3], y[:3]), (x[3:], y[3:])]
    for data in (x, (x, y), listed, [x[:4], x[4:]]):
        assert batch_count(data, 4) == len(list(batches(data, 4)))
    assert batch_count(iter(listed), 4) == 0  # an iterator: not known in advance


def test_evaluation_counts_its_batches(run):
    from cnnlab.train.evaluate import evaluate, predict_logits

    calls = Calls()
    x = torch.randn(70, 1, 8, 8)
    predict_logits(run.model, x, batch_size=32, progress=calls)
    assert_counts_up(calls.by_what()["evaluating"], 3)  # ceil(70 / 32)
    calls = Calls()
    result = evaluate(run, "test", progress=calls)
    assert_counts_up(calls.by_what()["evaluating"], math.ceil(result.n / 256))


def test_predict_counts_batches_of_image_files(run, tmp_path):
    from PIL import Image

    from cnnlab.train.evaluate import predict

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.new("L", (8, 8), 40 * i).save(paths[-1])
    calls = Calls()
    assert len(predict(run, paths, top=2, progress=calls)) == 3
    assert calls.calls == [(0, 1, "evaluating"), (1, 1, "evaluating")]


def test_diagnose_passes_count_their_batches(run):
    x = torch.randn(600, 1, 8, 8)
    y = torch.randint(0, 10, (600,))
    calls = Calls()
    diagnose.dead_units(run.model, x, batch_size=256, progress=calls)
    diagnose.activation_stats(run.model, x, batch_size=100, progress=calls)
    diagnose.gradient_flow(run.model, [(x[:256], y[:256]), (x[256:], y[256:])], progress=calls)
    found = calls.by_what()
    assert_counts_up(found["dead units"], 3)
    assert_counts_up(found["activation statistics"], 6)
    assert_counts_up(found["gradient flow"], 2)


def test_linear_probe_counts_features_then_fits(run):
    train, test = run.dataset("train"), run.dataset("test")
    calls = Calls()
    acc = explain.linear_probe(
        run.model,
        (train.images[:300], train.labels[:300]),
        (test.images[:100], test.labels[:100]),
        epochs=2,
        batch_size=128,
        preprocess=run.preprocess,
        progress=calls,
    )
    found = calls.by_what()
    assert_counts_up(found["features of the training images"], 3)
    assert_counts_up(found["features of the test images"], 1)
    assert_counts_up(found["fitting probes"], len(acc))
    order = [what for _, _, what in calls.calls]
    assert order.index("fitting probes") > order.index("features of the test images")


def test_activation_maximization_counts_steps_then_data(run):
    data = run.preprocess(run.dataset("test").images[:300])
    calls = Calls()
    explain.activation_maximization(
        run.model, "3", [0, 1], steps=5, restarts=1, data=data, progress=calls
    )
    found = calls.by_what()
    assert_counts_up(found["activation maximisation"], 5)
    assert_counts_up(found["strongest activations in the data"], 2)  # ceil(300 / 256)


def test_smoothgrad_counts_noisy_copies(run):
    x = torch.randn(4, 1, 8, 8)
    calls = Calls()
    explain.smoothgrad(run.model, x, n=10, batch_size=12, progress=calls)  # 3 copies a pass
    assert calls.calls == [(0, 10, "smoothgrad"), (3, 10, "smoothgrad"), (6, 10, "smoothgrad"),
                           (9, 10, "smoothgrad"), (10, 10, "smoothgrad")]  # fmt: skip


def test_explorer_top_images_count_batches(run):
    from cnnlab.explorer.top import top_images

    calls = Calls()
    top_images(run.model, torch.randn(90, 1, 8, 8), ["1"], k=3, batch_size=40, progress=calls)
    assert_counts_up(calls.by_what()["top images per channel"], 3)


def test_report_counts_its_parts(run_dir):
    from cnnlab.report import Budget, render
    from cnnlab.report.facts import GATHERERS

    budget = Budget(eval_images=100, diagnose_images=50, gradient_images=32, actmax_steps=2,
                    probe_train=100, probe_test=50, probe_epochs=2, erf_inputs=2,
                    actmax_stages=1, actmax_channels=1)  # fmt: skip
    calls = Calls()
    render(run_dir, budget, progress=calls)
    n = len(GATHERERS)
    assert [d for d, _, _ in calls.calls] == list(range(n + 1))  # before each part, then done
    assert {t for _, t, _ in calls.calls} == {n}
    assert [w for _, _, w in calls.calls] == [*GATHERERS, ""]


MODEL = """
from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10))
"""


def test_import_counts_its_evaluation(tmp_path):
    from safetensors.torch import save_file

    from cnnlab.train import import_run
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "tinynet.py").write_text(MODEL)
    source = parse_model_ref(f"{tmp_path / 'tinynet.py'}:make", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    calls = Calls()
    result = import_run(source, tmp_path / "w.safetensors", tmp_path / "run", "digits",
                        progress=calls)  # fmt: skip
    n = result["evaluation"]["n"]
    assert_counts_up(calls.by_what()["evaluating"], math.ceil(n / 256))


# --- the CLI -------------------------------------------------------------------------------


def test_piped_eval_prints_no_bar_and_the_same_json(run_dir, run, capsys):
    """stderr is no terminal under pytest: stdout holds the library's JSON alone, stderr
    nothing."""
    from cnnlab.train.evaluate import evaluate

    assert main(["eval", str(run_dir), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == evaluate(run, "test").to_dict()


def test_the_bar_needs_a_terminal_and_no_quiet():
    with cli_progress.progress_bar() as progress:  # pytest's stderr is no terminal
        assert progress is None
    forced = Console(file=io.StringIO(), force_terminal=True)
    with cli_progress.progress_bar(quiet=True, console=forced) as progress:
        assert progress is None
    assert forced.file.getvalue() == ""


def test_a_forced_terminal_shows_the_bar_on_stderr(run_dir, capsys, monkeypatch):
    """With a terminal, `cnnlab diagnose` draws its passes as a bar (here a rich Console that
    is forced to be one); stdout's tables are unchanged."""
    screen = io.StringIO()
    monkeypatch.setattr(
        cli_progress, "_console", lambda: Console(file=screen, force_terminal=True, width=120)
    )
    assert main(["diagnose", str(run_dir), "--limit", "300", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["dead_units"]["samples"] == 300
    drawn = screen.getvalue()  # each pass drawn as it starts (300 images: 2 batches of 256)
    for what in ("dead units", "activation statistics", "gradient flow"):
        assert what in drawn
    assert "2/2" in drawn  # the last state, drawn as the bar closes


def test_a_loop_that_starts_again_restarts_the_bar():
    screen = io.StringIO()
    forced = Console(file=screen, force_terminal=True, width=100)
    with cli_progress.progress_bar(console=forced) as progress:
        for i in range(1, 4):
            progress(i, 3, "first")
        progress(1, 5, "second")
    drawn = screen.getvalue()  # each loop drawn as it starts, the last state at the end
    assert "first" in drawn and "1/3" in drawn and "second" in drawn and "1/5" in drawn


def test_batches_of_unknown_count_report_a_total_of_0_and_never_restart_the_bar(run, monkeypatch):
    """An iterator of batches: each loop reports (0, 0), (1, 0), (2, 0)... (the contract:
    0 when the total is not known), and the bar keeps one task for it (no reset per batch:
    its elapsed time runs on)."""
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 10, (12,))
    pairs = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 12, 4)]
    calls = Calls()
    diagnose.dead_units(run.model, iter(pairs), progress=calls)
    diagnose.gradient_flow(run.model, iter(pairs), progress=calls)
    for what in ("dead units", "gradient flow"):
        assert calls.by_what()[what] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    resets = []
    real_reset = rich.progress.Progress.reset
    monkeypatch.setattr(
        rich.progress.Progress,
        "reset",
        lambda self, *a, **k: resets.append(k) or real_reset(self, *a, **k),
    )
    forced = Console(file=io.StringIO(), force_terminal=True, width=100)
    with cli_progress.progress_bar(console=forced) as progress:
        diagnose.dead_units(run.model, iter(pairs), progress=progress)
    assert len(resets) == 1  # the loop's start


def test_what_the_model_prints_while_the_bar_shows_stays_on_stdout(capsys):
    """A user's forward that prints: its text is the command's stdout, piped or not; the
    bar (on stderr) does not take it over."""
    forced = Console(file=io.StringIO(), force_terminal=True, width=100)
    with cli_progress.progress_bar(console=forced) as progress:
        progress(0, 2, "evaluating")
        print("the model says hello")
        progress(1, 2, "evaluating")
    out = capsys.readouterr().out
    assert "the model says hello" in out


def test_model_without_progress_keyword_still_works_in_library(run):
    """The keyword is optional: every loop runs silently without it (None)."""
    x = torch.randn(8, 1, 8, 8)
    assert diagnose.dead_units(run.model, x).samples == 8
    assert isinstance(run.model, nn.Module)


def test_a_numpy_array_of_images_counts_the_batches_batches_cuts_it_into():
    """Truth: the batches `cnnlab.inspect.batches` yields for the same array (it reads NumPy
    images as a tensor); the count was the array's 600 rows, as for a list of batches."""
    import numpy as np

    from cnnlab.inspect import batches
    from cnnlab.inspect.progress import batch_count

    images = np.zeros((600, 1, 8, 8), dtype=np.float32)
    assert batch_count(images, 256) == len(list(batches(images, 256))) == 3
