"""`cnnlab import --data DIR --classes ...` names a folder's classes its own way: the run
imports and evaluates (its data read again is checked against the folder's own class names,
which config.json keeps as data_classes), and a class folder renamed since is still refused.
Truth: sklearn's accuracy_score of run.model's predictions on the folder's test images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import accuracy_score

from cnnlab.cli import main
from cnnlab.data import load_dataset, to_float
from cnnlab.errors import RunError
from cnnlab.train import load_run
from cnnlab.train.evaluate import evaluate

NET = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 2))
"""


@pytest.fixture
def imported(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        for i, name in enumerate(("cat", "dog")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = (rng.integers(0, 60, (8, 8)) + 180 * i).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "data" / split / name / f"{j}.png")
    (tmp_path / "net.py").write_text(NET)
    namespace: dict = {}
    exec(NET, namespace)
    save_file(namespace["make"]().state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    args = ["import", "--model", f"{tmp_path / 'net.py'}:make", "--weights",
            str(tmp_path / "w.safetensors"), "--data", str(tmp_path / "data"), "--classes",
            "kitty,puppy", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return tmp_path, out


def test_classes_named_at_import_evaluate_on_the_folder(imported):
    tmp_path, out = imported
    run = load_run(out)
    assert run.classes == ("kitty", "puppy")
    test = load_dataset(str(tmp_path / "data"), "test")
    with torch.no_grad():
        predicted = run.model(to_float(test.images, run.mean, run.std)).argmax(1)
    assert evaluate(run).accuracy == pytest.approx(accuracy_score(test.labels, predicted))
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["accuracy"] == pytest.approx(accuracy_score(test.labels, predicted))


def test_a_folder_renamed_since_is_still_refused(imported):
    tmp_path, out = imported
    for split in ("train", "test"):
        (tmp_path / "data" / split / "dog").rename(tmp_path / "data" / split / "wolf")
    with pytest.raises(
        RunError, match="now holds the classes cat, wolf; the run was trained on cat, dog"
    ):
        evaluate(load_run(out))
