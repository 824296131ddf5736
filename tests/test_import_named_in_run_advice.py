"""A run is made by `cnnlab train` or by `cnnlab import`, and the messages say which: a path
that is no run names both ways to make one (it named only train, so a model trained
elsewhere seemed to have no way in), and a run whose code changed since `cnnlab import` made
it is told so, not 'since the run was trained' (config.json's `imported` record says how it
was made). Truth: the advice typed back makes the run; the runs' own records."""

from __future__ import annotations

import re
import shlex
import textwrap

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, checkpoint, load_run, train
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CODE = textwrap.dedent(
    """
    from torch import nn

    def make(width=4):
        return nn.Sequential(
            nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, 10),
        )
    """
)


def _weights(tmp_path, code):
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, parse_model_ref(f"{code}:make").build().state_dict())
    return weights


def test_a_path_that_is_no_run_names_import_and_its_command_makes_one(tmp_path):
    code, out = tmp_path / "f.py", tmp_path / "mine"
    code.write_text(CODE)
    with pytest.raises(RunError, match=r"train one: cnnlab train --out") as got:
        load_run(out)
    found = re.search(r"cnnlab import (.*?)\)$", str(got.value))
    assert found, str(got.value)
    put = {
        "file.py:factory": f"{code}:make",
        "FILE.safetensors": str(_weights(tmp_path, code)),
        "NAME|DIR": "digits",
    }
    assert main(["import", *[put.get(w, w) for w in shlex.split(found.group(1))]]) == 0
    assert load_run(out).input_shape == (1, 8, 8)


def test_changed_code_of_an_imported_run_says_imported(tmp_path):
    code, out = tmp_path / "f.py", tmp_path / "run"
    code.write_text(CODE)
    argv = ["import", "--model", f"{code}:make", "--weights", str(_weights(tmp_path, code))]
    assert main([*argv, "--data", "digits", "--out", str(out)]) == 0
    code.write_text(CODE + "\n# edited\n")
    with pytest.raises(RunError, match="has changed since the run was imported"):
        load_run(out)


def test_changed_code_of_a_trained_run_still_says_trained(tmp_path):
    code, out = tmp_path / "f.py", tmp_path / "run"
    code.write_text(CODE)
    config = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
    train(parse_model_ref(f"{code}:make"), "digits", out, config)
    code.write_text(CODE + "\n# edited\n")
    with pytest.raises(RunError, match="has changed since the run was trained"):
        load_run(out)
