"""`cnnlab explain --target NAME` that names no class of a 100-class run: one line naming
the class meant (the same spelling but for case first, then the closest one) and at most 10
of the classes, where all 100 were listed and `c099` was not suggested for `C099`. Truth:
the run's class names, and the suggestion typed back explains."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import build, load_spec
from cnnlab.cli import main
from cnnlab.cli.explain import class_index
from cnnlab.errors import ConfigError
from cnnlab.train.checkpoint import save_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CLASSES = [f"c{i:03d}" for i in range(100)]
SPEC = {
    "name": "hundred",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap",
               {"linear": 100}],
}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    spec = load_spec(SPEC)
    torch.manual_seed(0)
    (path / "spec.yaml").write_text(spec.to_yaml())
    config = {"data": "folder", "classes": CLASSES, "mean": [0.5], "std": [0.25],
              "input_shape": [1, 8, 8]}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    save_weights(path / "model.safetensors", build(spec).state_dict())
    return path


@pytest.mark.parametrize(
    ("typed", "meant"), [("C099", "c099"), ("c99", "c099"), ("c0999", "c099"), ("cat", None)]
)
def test_the_class_meant_and_ten_classes_are_named(run_dir, tmp_path, capsys, typed, meant):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    out = tmp_path / "ex"
    assert main(["explain", str(run_dir), str(image), "--target", typed, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--target {typed!r} is not a class" in err and "0..99" in err
    named = [c for c in CLASSES if c in err]
    assert len(named) <= 11 and "c000, c001" in err and "90 more" in err, err  # all 100 were
    if meant is None:
        assert "did you mean" not in err
        return
    assert f"did you mean {meant!r}?" in err
    assert main(["explain", str(run_dir), str(image), "--target", meant, "--out", str(out)]) == 0
    assert [p.name.endswith(f"_class{CLASSES.index(meant)}.png") for p in out.iterdir()] == [True]


def test_an_index_out_of_range_lists_ten_classes():
    with pytest.raises(ConfigError, match=r"--target 100 is outside .*c009, \.\.\. \(90 more\)"):
        class_index("100", CLASSES)
    with pytest.raises(ConfigError, match="did you mean 'Dog'"):  # the one of that case
        class_index("DOG", ["cat", "Dog", "bird"])
    assert class_index("c042", CLASSES) == 42 and class_index("7", CLASSES) == 7
