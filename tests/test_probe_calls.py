"""A module called more than once in a forward (one ReLU module reused after three convs) is
named by call in `cnnlab probe` (rows) and `visualize --maps` (files), as the summary and the
explorer name calls: `relu` the first call, `relu #2`, `relu #3` the later ones; a row or
file named `relu` held the last call's. A label typed back (`--layers "relu #2"`) reads that
call. Truth: plain forward hooks recording every call's output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.explain import feature_maps, save_grid
from cnnlab.explain.features import normalize_maps
from cnnlab.explain.probe import INPUT, extract_features, pool_features
from cnnlab.inspect import spatial_calls
from tiny_nets import SHARED_RELU as CODE
from tiny_nets import noise_png, relu_calls, trained_from_code

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CALLS = ["relu", "relu #2", "relu #3"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_from_code(tmp_path_factory.mktemp("reused"), CODE)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return noise_png(tmp_path_factory.mktemp("img") / "x.png")


def test_feature_maps_read_each_call_by_its_label():
    exec(CODE, space := {})
    torch.manual_seed(0)
    model, x = space["make"](), torch.randn(2, 1, 16, 16)
    truth = relu_calls(model, x)
    assert [t.shape[-1] for t in truth] == [16, 8, 4]
    assert spatial_calls(model, x) == ["c1", "relu", "c2", "relu #2", "c3", "relu #3"]
    maps = feature_maps(model, x, CALLS)
    for label, t in zip(CALLS, truth, strict=True):
        assert torch.equal(maps[label], t)
    feats, _ = extract_features(model, (x, torch.tensor([0, 1])), [INPUT, *CALLS], cap=64)
    for label, t in zip(CALLS, truth, strict=True):
        assert torch.equal(feats[label], pool_features(t, 64))


def test_visualize_maps_writes_a_file_per_call(run_dir, image, tmp_path, capsys):
    from cnnlab.cli.explain import read_images
    from cnnlab.train import load_run

    run = load_run(run_dir)
    truth = relu_calls(run.model, run.preprocess(read_images([str(image)], (1, 16, 16))))
    out = tmp_path / "v"
    assert main(["visualize", str(run_dir), "--maps", str(image), "--out", str(out)]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"maps_relu.png", "maps_relu_call2.png", "maps_relu_call3.png"} <= files
    for k, name in enumerate(["maps_relu.png", "maps_relu_call2.png", "maps_relu_call3.png"]):
        expected = save_grid(normalize_maps(truth[k][0]), tmp_path / f"truth{k}.png")
        assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(expected)))
    typed = tmp_path / "typed"
    argv = ["visualize", str(run_dir), "--maps", str(image), "--layers", "relu #2", "--out"]
    assert main([*argv, str(typed)]) == 0
    assert [p.name for p in typed.iterdir()] == ["maps_relu_call2.png"]
    capsys.readouterr()
    assert main([*argv[:-1], "relu #4", "--out", str(typed)]) == 2
    err = capsys.readouterr().err
    assert "called 3 times" in err and "(relu, relu #2, relu #3)" in err, err


def test_probe_has_a_row_per_call_and_takes_a_label(run_dir, capsys):
    args = ["--train", "200", "--test", "100", "--epochs", "5", "--json"]
    assert main(["probe", str(run_dir), *args]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    names = [r["name"] for r in rows]
    assert names == ["input", "c1", "relu", "c2", "relu #2", "c3", "relu #3", "head"]
    assert {r["kind"] for r in rows if r["name"].startswith("relu")} == {"ReLU"}
    assert main(["probe", str(run_dir), *args, "--layers", "relu #2"]) == 0
    typed = json.loads(capsys.readouterr().out)["layers"]
    assert [r["name"] for r in typed] == ["input", "relu #2"]
    assert typed[1]["accuracy"] == rows[4]["accuracy"]  # the same call's features, same fit
