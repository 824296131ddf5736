"""`cnnlab probe --json`: the table's facts as JSON alone on stdout (eval, diagnose, summary,
predict, data, train and import have one), each layer's accuracy the Python API's."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.explain import linear_probe
from cnnlab.train import TrainConfig, load_run, train

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}
ARGS = ["--train", "300", "--test", "100", "--epochs", "5"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "run"
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=64, precision="fp32", flip=False, tta=False)
    train(TINY, "digits", out, config)
    return out


def test_probe_json_is_the_python_apis_numbers(run_dir, capsys):
    assert main(["probe", str(run_dir), *ARGS, "--json"]) == 0
    said = capsys.readouterr()
    got = json.loads(said.out)  # stdout holds the JSON document alone
    run = load_run(run_dir)
    tr, te = run.dataset("train"), run.dataset("test")
    expected = linear_probe(
        run.model,
        (tr.images[:300], tr.labels[:300]),
        (te.images[:100], te.labels[:100]),
        epochs=5,
        preprocess=run.preprocess,
    )
    assert [row["name"] for row in got["layers"]] == list(expected)
    assert [row["accuracy"] for row in got["layers"]] == list(expected.values())
    kinds = [row["kind"] for row in got["layers"]]
    assert kinds == ["raw pixels", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU",
                     "GlobalAvgPool2d", "Linear"]  # fmt: skip
    assert got["train_images"] == 300 and got["test_images"] == 100 and got["epochs"] == 5
    assert got["run"] == str(run.path)


def test_the_table_shows_the_same_numbers(run_dir, capsys):
    assert main(["probe", str(run_dir), *ARGS, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert main(["probe", str(run_dir), *ARGS]) == 0
    table = capsys.readouterr().out
    for row in rows:
        assert f"{row['accuracy']:.1%}" in table
