"""One image, one answer: `predict` and `explain` (the class whose heatmap it draws) must see
the same pixels and give the same probabilities for the same file of the same run, at the
training size and at any other (each resizes the file to the run's input, as training does,
and says so). The truth: each command's own reading of the file, through the run's one
model; they must agree with each other, to float precision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import explain as explain_cli
from cnnlab.cli import main
from cnnlab.train import TrainConfig, train
from cnnlab.train.evaluate import predict
from cnnlab.train.rundir import load_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
SIDES = [8, 12, 5]  # the run's size, larger, smaller: each file resized to 8×8 as training


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(
        TINY,
        "digits",
        out,
        TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32"),
    )
    return out


@pytest.mark.parametrize("side", SIDES, ids=[f"{s}x{s}" for s in SIDES])
def test_predict_and_explain_give_one_answer_for_one_file(run_dir, tmp_path, capsys, side):
    rng = np.random.default_rng(side)
    paths = []
    for i in range(4):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(path)
        paths.append(str(path))
    run = load_run(run_dir)
    predicted = predict(run, paths, top=len(run.classes))
    with torch.no_grad():
        probs = run.model(run.preprocess(explain_cli.read_images(paths, run.input_shape)))
        probs = probs.softmax(1)
    note = capsys.readouterr().err  # explain's note: one line naming the resized files
    assert (note.count("\n"), "resized to 8×8" in note) == ((0, False) if side == 8 else (1, True))
    for i, prediction in enumerate(predicted):
        assert prediction.size == (side, side)
        assert prediction.resized_to == (None if side == 8 else (8, 8))
        by_name = dict(prediction.top)
        explained = {name: float(probs[i, k]) for k, name in enumerate(run.classes)}
        assert by_name.keys() == explained.keys()
        for name, p in by_name.items():
            assert p == pytest.approx(explained[name], abs=1e-5), (paths[i], name)


def test_the_commands_print_one_answer_and_one_note(run_dir, tmp_path, capsys):
    """`cnnlab predict` and `cnnlab explain` on a 12×12 file of an 8×8 run: the same top-3
    classes and percentages, and each says once, on stderr, that it resized the file."""
    path = tmp_path / "twelve.png"
    pixels = np.random.default_rng(3).integers(0, 256, (12, 12), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    assert main(["predict", str(run_dir), str(path), "--top", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    (row,) = json.loads(out)
    assert row["size"] == [12, 12] and row["resized_to"] == [8, 8]
    predicted = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in row["top"])
    expected_note = f"note: {path} is 12×12 (H×W); resized to 8×8, the run's input size\n"
    assert err == expected_note
    argv = ["explain", str(run_dir), str(path), "--top-k", "3", "--out", str(tmp_path / "x")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.split(": ", 1)[1].split("  ->  ")[0] == predicted
    assert err == expected_note
