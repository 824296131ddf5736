"""The report of a model with a `torch.jit.script`ed block (the README: such a model is
looked into around the block): finding the stages hooked every module, the TorchScript
block too, which takes no hooks, so the page left out its activation maximisation and linear
probes with 'RuntimeError: register_forward_hook is not supported on ScriptModules' while
`cnnlab probe` read the same run. Truth: forward hooks on the model's Python modules."""

from __future__ import annotations

import torch

from cnnlab.report import facts
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import fired, imported_run

NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.block = torch.jit.script(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()))
        self.down = nn.Sequential(nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(self.down(self.block(self.stem(x))).mean((2, 3)))


def make(classes=10):
    torch.manual_seed(0)
    return Net(classes)
"""


def _activation_maps(model, x) -> list[str]:
    """The ReLU modules Python can hook (not the scripted block's) that output a map."""
    return fired(model, x, lambda name, m, y: isinstance(m, torch.nn.ReLU))


def test_stages_probes_and_actmax_of_a_model_with_a_scripted_block(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    run = load_run(path)
    budget = Budget(probe_train=64, probe_test=32, actmax_steps=2, actmax_channels=1)
    src = Sources(path, run, None, budget)
    _, x, _ = src.test
    run.model.eval()
    truth = _activation_maps(run.model, x[:1])
    assert truth == ["stem.1", "down.1"]  # 8×8, then 4×4
    assert src.stages == truth
    labels = [src.label(name) for name in truth]
    assert list(facts._probes(src).accuracy) == ["input", *labels]
    assert [t.layer for t in facts._actmax(src)] == labels[-budget.actmax_stages :]
