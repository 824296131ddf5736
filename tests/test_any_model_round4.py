"""Models brought to cnnlab written as PyTorch allows but cnnlab's own specs never build: a
buffer registered in the first forward, weights made by torch.nn.utils.parametrizations
(weight_norm, spectral_norm). Truth: torch's own forward, state_dict and autograd."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.cli import main
from cnnlab.train import import_run, load_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

QUICK = ["--epochs", "1", "--batch-size", "128", "--no-flip", "--no-tta", "--precision", "fp32"]

COUNTER = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Counter(nn.Module):
        '''Counts its forwards in a buffer registered at the first one.'''

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            if not hasattr(self, "calls"):
                self.register_buffer("calls", torch.zeros(()))
            self.calls += 1
            return self.fc(F.relu(self.stem(x)).mean((2, 3)))

    def make_net():
        return Counter()
    """
)


def test_a_buffer_registered_in_forward_opens_with_its_saved_value(tmp_path, capsys):
    """Training saved `calls` with the weights; a fresh instance has no `calls` until its
    first forward, so every command refused the run ('not in the model: calls')."""
    code = tmp_path / "counter.py"
    code.write_text(COUNTER)
    out = tmp_path / "run"
    argv = ["train", "--model", f"{code}:make_net", "--data", "digits", "--out", str(out)]
    assert main([*argv, "--quiet", *QUICK]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] > 0
    saved = load_file(out / "model.safetensors")
    run = load_run(out)
    assert torch.equal(run.model.stem.weight, saved["stem.weight"])
    # the weights loaded after the extra forward: the count goes on from the saved one
    assert run.model.calls >= saved["calls"] > 0


def test_import_takes_a_buffer_registered_in_forward(tmp_path):
    code = tmp_path / "counter.py"
    code.write_text(COUNTER)
    source = parse_model_ref(f"{code}:make_net", [])
    model = source.build()
    model(torch.zeros(2, 1, 8, 8))
    model.calls.fill_(41)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    import_run(source, tmp_path / "w.safetensors", tmp_path / "run", "digits")
    assert load_file(tmp_path / "run" / "model.safetensors")["calls"] >= 41  # + its checks
    assert torch.equal(load_run(tmp_path / "run").model.fc.weight, model.fc.weight)
