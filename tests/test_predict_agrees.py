"""`cnnlab predict` on image files gives the prediction `cnnlab eval` counts, for a run made
from a spec and one made from Python code: every training image of a converged run, saved
as a PNG and predicted from the file, lands in eval's confusion matrix where eval put it, with
the probabilities whose cross-entropy eval reports. Truths: sklearn's confusion matrix of
predict's answers, and the cross-entropy recomputed from predict's probabilities."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix

from cnnlab.cli import main
from cnnlab.train import TrainConfig, train
from cnnlab.train.evaluate import evaluate, predict
from cnnlab.train.rundir import load_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

NET = textwrap.dedent(
    """
    from torch import nn

    def make_net(width=16):
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(width * 8 * 8, 10),
        )
    """
)
SPEC = {  # the same network in the spec language
    "name": "agree",
    "input": [1, 8, 8],
    "layers": [
        *[{"conv": {"filters": 16, "kernel": 3, "padding": "same"}}, "batchnorm", "relu"] * 2,
        "flatten",
        {"linear": 10},
    ],
}
# bf16: the precision eval scores in whenever training used it (config.json precision_used);
# the EMA and translation on, as `cnnlab train` runs by default; 8 epochs reach about 93 % test
# accuracy (a flatten head learns digits faster than global pooling: 91 % after 12 epochs).
EPOCHS, BATCH = 8, 64


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("agree")
    config = TrainConfig(epochs=EPOCHS, batch_size=BATCH, precision="bf16", tta=False)
    train(SPEC, "digits", base / "spec", config)
    (base / "net.py").write_text(NET)
    argv = ["train", "--model", f"{base / 'net.py'}:make_net", "--data", "digits"]
    options = ["--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--precision", "bf16"]
    assert main([*argv, *options, "--no-tta", "--quiet", "--out", str(base / "code")]) == 0
    return base


@pytest.mark.parametrize("kind", ["spec", "code"])
def test_predict_on_training_images_agrees_with_eval(runs, kind, tmp_path):
    run = load_run(runs / kind)
    assert (run.spec is None) == (kind == "code") and run.precision == "bf16"
    ds = run.dataset("train")
    paths = []
    for i, pixels in enumerate(ds.images[:, 0].numpy()):  # (8, 8) uint8 each
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    predictions = predict(run, paths, top=len(run.classes))
    probs = np.array([[dict(p.top)[c] for c in run.classes] for p in predictions])  # (N, 10)
    labels = ds.labels.numpy()

    result = evaluate(run, "train")
    assert result.accuracy > 0.9  # converged: eval and predict judge confident answers
    expected = confusion_matrix(labels, probs.argmax(1), labels=range(10))
    assert np.array_equal(np.array(result.confusion), expected)
    cross_entropy = -np.mean(np.log(probs[np.arange(len(labels)), labels]))
    assert math.isclose(cross_entropy, result.loss, rel_tol=1e-5)
