"""One image, one answer: `predict` and `explain` (the class whose heatmap it draws) must see
the same pixels and give the same probabilities for the same file of the same run, at the
training size and at any other. The truth: each command's own reading of the file, through
the run's one model; they must agree with each other, to float precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import explain as explain_cli
from cnnlab.train import TrainConfig, train
from cnnlab.train.evaluate import predict
from cnnlab.train.rundir import load_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
OPEN = (
    "predict runs a global-pooling model on an image of another size at that size "
    "(src/cnnlab/train/evaluate.py predict), explain resizes it to the run's input as "
    "training does (src/cnnlab/cli/explain.py read_images): two answers for one file"
)
SIZES = [  # (side of the PNG, open: the files to change)
    (8, None),
    (12, OPEN),
    (5, OPEN),
]


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


def _params():
    for side, reason in SIZES:
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(side, id=f"{side}x{side}", marks=marks)


@pytest.mark.parametrize("side", list(_params()))
def test_predict_and_explain_give_one_answer_for_one_file(run_dir, tmp_path, side):
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
    for i, prediction in enumerate(predicted):
        by_name = dict(prediction.top)
        explained = {name: float(probs[i, k]) for k, name in enumerate(run.classes)}
        assert by_name.keys() == explained.keys()
        for name, p in by_name.items():
            assert p == pytest.approx(explained[name], abs=1e-5), (paths[i], name)
