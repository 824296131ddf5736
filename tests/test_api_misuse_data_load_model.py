"""load_run(out, model=...) of a run that builds its own model (a spec, the user's code) is
refused: the model passed was ignored and kept its random weights, no error, while the
caller went on with it. A run trained from a module still loads into the module passed (its
weights those safetensors reads from the file)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import cnnlab
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, parse_model_ref, train

SPEC = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}
QUICK = TrainConfig(epochs=1, batch_size=64, precision="fp32")
NET = """from torch import nn


def make_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
"""


def test_a_spec_run_refuses_a_model_passed(tmp_path):
    train(SPEC, "digits", tmp_path / "run", QUICK)
    with pytest.raises(RunError, match=r"from spec\.yaml: the model passed would not get"):
        load_run(tmp_path / "run", model=cnnlab.build(SPEC))


def test_a_code_run_refuses_a_model_passed(tmp_path):
    (tmp_path / "nets.py").write_text(NET)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make_net")
    train(source, "digits", tmp_path / "run", QUICK)
    with pytest.raises(RunError, match="from its model's code: .*use run.model"):
        load_run(tmp_path / "run", model=source.build())


def test_a_module_run_loads_into_the_module_passed(tmp_path):
    train(cnnlab.build(SPEC), "digits", tmp_path / "run", QUICK)
    given = cnnlab.build(SPEC)
    run = load_run(tmp_path / "run", model=given)
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert run.model is given
    assert all(torch.equal(v, saved[k]) for k, v in given.state_dict().items())
