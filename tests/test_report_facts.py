"""The report's facts: gathered from library calls on a real (tiny) run, checked against
independent truths (the trainer's stored test accuracy, torch's own counts), leaving the
model and the process as they were, and drawn from the facts alone.

The run here is an image folder with hostile class-folder names: one whose bytes are not
UTF-8 (Latin-1 "café") and one that is HTML markup."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import ReportError
from cnnlab.report import Budget, render, write_report
from cnnlab.report.facts import Facts, gather, printable
from cnnlab.report.show import page
from cnnlab.train.rundir import load_run

BUDGET = Budget(
    diagnose_images=50, gradient_images=16, actmax_steps=4, actmax_stages=1, actmax_channels=2,
    probe_train=40, probe_test=20, probe_epochs=3, erf_inputs=2, erf_layers=2, map_layers=2,
)  # fmt: skip
MARKUP = "<img src=x onerror=alert(1)>"
CAFE = os.fsdecode(b"caf\xe9")  # not UTF-8: Python keeps the byte as a lone surrogate
SPEC = {
    "name": "folder",
    "input": [1, 16, 16],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 3},
    ],
}


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """Three classes of 16×16 gray squares (bright, dark, striped), 15 images each, trained
    six epochs: a run whose class folders are named b"caf\\xe9", MARKUP and "plain"."""
    from cnnlab.design.spec import load_spec
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("data")
    folder = Path(os.fsencode(root / "images").decode("utf-8", "surrogateescape"))
    rng = np.random.default_rng(0)
    for name, base in ((CAFE, 200), (MARKUP, 40), ("plain", 120)):
        (folder / name).mkdir(parents=True)
        for i in range(15):
            image = np.clip(base + rng.normal(0, 20, (16, 16)), 0, 255)
            if name == "plain":
                image[::2] = 255 - image[::2]
            Image.fromarray(image.astype(np.uint8)).save(folder / name / f"{i}.png")
    out = tmp_path_factory.mktemp("runs") / "folder"
    config = TrainConfig(epochs=6, batch_size=12, lr=0.05, diagnose_every=1, val_fraction=0.1)
    train(load_spec(SPEC), str(folder), out, config)
    return out


def snapshot(model: torch.nn.Module) -> dict:
    return {
        "tensors": {k: (v.clone(), v.stride()) for k, v in model.state_dict().items()},
        "modes": [m.training for m in model.modules()],
        "grads": [p.requires_grad for p in model.parameters()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    }


def test_gather_leaves_model_threads_and_rng_as_they_were(folder_run):
    run = load_run(folder_run)
    before = snapshot(run.model)
    threads = torch.get_num_threads()
    rng = torch.random.get_rng_state()
    facts = gather(folder_run, run, budget=BUDGET, strict=True)
    after = snapshot(run.model)
    assert isinstance(facts, Facts)
    assert before["modes"] == after["modes"] and before["grads"] == after["grads"]
    assert before["hooks"] == after["hooks"] == 0
    for name, (tensor, stride) in before["tensors"].items():
        assert torch.equal(tensor, after["tensors"][name][0]), name
        assert stride == after["tensors"][name][1], f"{name} re-laid out (channels-last?)"
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_a_failing_one_thread_part_gives_the_thread_count_back(folder_run, monkeypatch):
    import cnnlab.explain

    def broken(*args, **kwargs):
        assert torch.get_num_threads() == 1  # the part did run on one thread
        raise RuntimeError("broken actmax")

    monkeypatch.setattr(cnnlab.explain, "activation_maximization", broken)
    threads = torch.get_num_threads()
    facts = gather(folder_run, load_run(folder_run), budget=BUDGET)
    assert facts.parts["actmax"].note == "Not shown: RuntimeError: broken actmax"
    assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError, match="broken actmax"):
        gather(folder_run, load_run(folder_run), budget=BUDGET, strict=True)
    assert torch.get_num_threads() == threads


def test_results_agree_with_the_trainers_stored_accuracy_and_torch_counts(folder_run):
    """The report predicts as the trainer evaluated: its accuracy on the whole test split is
    the one the trainer stored in metrics.jsonl; the matrix counts what torch counts."""
    run = load_run(folder_run)
    facts = gather(folder_run, run, budget=BUDGET, strict=True)
    results = facts.parts["results"].value
    e = results.evaluation
    stored = json.loads((folder_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert e.n == len(run.dataset("test")) == len(results.labels)
    assert round(e.accuracy * e.n) == round(stored["test_acc"] * e.n)  # images right
    predicted = results.probs.argmax(1)
    m = torch.tensor(e.confusion)
    for t in range(3):
        for p in range(3):
            assert m[t, p] == ((results.labels == t) & (predicted == p)).sum()
    assert torch.allclose(results.probs.sum(1), torch.ones(e.n), atol=1e-5)


def test_hostile_class_folder_names_render_escaped(folder_run, tmp_path):
    """Not a crash, and not markup: b"caf\\xe9" shows as caf\\xe9, MARKUP as text."""
    out = write_report(folder_run, tmp_path / "page.html", BUDGET, strict=True)
    html = out.read_text(encoding="utf-8")  # valid UTF-8 throughout
    assert "caf\\xe9" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert MARKUP not in html
    assert printable(CAFE) == "caf\\xe9" and printable("\ud800x") == "\\ud800x"


def test_the_page_is_drawn_from_the_facts_alone(folder_run, tmp_path):
    """Once gathered, the facts need neither the run directory nor the model."""
    copy = tmp_path / "copy"
    shutil.copytree(folder_run, copy)
    facts = gather(copy, load_run(copy), budget=BUDGET, strict=True)
    shutil.rmtree(copy)
    html, timings = page(facts, strict=True)
    assert 'class="note missing"' not in html
    assert list(timings) == [
        "run", "architecture", "training", "results", "attention", "features", "health",
    ]  # fmt: skip
    with pytest.raises(AttributeError):
        facts.no_run = "changed"  # frozen


def test_missing_test_data_is_a_note_or_with_strict_an_error(folder_run):
    """The image folder moved away after training: the parts that need images say so; the
    rest (curves, architecture, spec) are still made."""
    data = Path(json.loads((folder_run / "config.json").read_text())["data"])
    away = data.with_name("moved-away")
    data.rename(away)
    try:
        html, _ = render(folder_run, BUDGET)
        with pytest.raises(ReportError, match="test images cannot be loaded"):
            render(folder_run, BUDGET, strict=True)
    finally:
        away.rename(data)
    assert "the run&#39;s test images cannot be loaded" in html
    assert html.count('class="note missing"') == 10  # every part that predicts or looks
    assert "Layers" in html and "Not shown" not in html.split('id="results"')[0]
