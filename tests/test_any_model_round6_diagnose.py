"""Diagnosis of models whose output is not one logits tensor, as people write them: a dict
(Hugging Face's ModelOutput), Inception's (logits, aux logits) in train mode only. Truth:
plain torch's forward hooks and autograd on the same model."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import diagnose
from cnnlab.errors import ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x):
        return {"logits": self.fc(self.act(self.conv(x)).mean((2, 3)))}


def _data():
    torch.manual_seed(0)
    return torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])


def test_dead_units_and_activation_stats_take_the_output_their_error_asks_for():
    """Their error said 'pass output= (a key or a function)', an argument neither took."""
    model, (x, _) = DictOut().eval(), _data()
    seen = []
    hook = model.act.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    hook.remove()
    fired = (seen[0] > 0).flatten(2).any(2).any(0)  # (C,): channels > 0 somewhere
    with pytest.raises(ExplainError, match="pass output="):
        diagnose.dead_units(model, x)
    dead = diagnose.dead_units(model, x, output="logits")
    assert dead.layers[0].dead == int((~fired).sum())
    stats = diagnose.activation_stats(model, x, output=lambda out: out["logits"])
    assert stats.layers[0].mean == pytest.approx(seen[0].mean().item(), rel=1e-5)


def test_gradient_flow_takes_the_output_its_error_asks_for():
    """'pass output=' was the advice, and gradient_flow() had no such argument (TypeError)."""
    model, (x, y) = DictOut(), _data()
    with pytest.raises(ExplainError, match="pass output="):
        diagnose.gradient_flow(model, (x, y))
    flow = diagnose.gradient_flow(model, (x, y), output="logits")
    model.train()
    (g,) = torch.autograd.grad(F.cross_entropy(model(x)["logits"], y), [model.conv.weight])
    assert flow.layers[0].name == "conv"
    assert flow.layers[0].l2 == pytest.approx(g.norm().item(), rel=1e-5)


AUX_FILE = """
from torch import nn


class Inceptionish(nn.Module):
    '''(logits, aux logits) in train mode, the logits alone in eval mode, as Inception v3.'''

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        self.head = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        h = self.stem(x)
        return (self.head(h), self.aux(h)) if self.training else self.head(h)


def make():
    return Inceptionish()
"""


def test_diagnose_and_report_of_an_imported_model_with_aux_logits_in_train_mode(tmp_path, capsys):
    """cnnlab trains no such model, but imports it; diagnose failed on it ('the model returns
    a tuple ...; pass output=', an option the command has not) and the report showed no
    gradient flow. Its gradient flow is measured in eval mode and says so. Truth: autograd
    on the eval-mode model."""
    from cnnlab.cli import main
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run
    from tiny_nets import imported_run

    run_dir = imported_run(tmp_path, AUX_FILE, data="digits", input_shape=(1, 8, 8))
    run = load_run(run_dir)
    x, y = _data()
    assert not diagnose.train_mode_logits(run.model.train(), x)  # (logits, aux) in train mode
    assert run.model.training  # left as it was
    run.model.eval()
    assert diagnose.train_mode_logits(DictOut(), x, output="logits")
    assert main(["diagnose", str(run_dir), "--limit", "64", "--json"]) == 0
    flow = json.loads(capsys.readouterr().out)["gradient_flow"]
    assert flow["train"] is False and [l["name"] for l in flow["layers"]][0] == "stem.0"
    src = Sources(run_dir, run, None, Budget(gradient_images=64))
    _, xs, ys = src.test
    loss = F.cross_entropy(run.model(xs[:64]), ys[:64])
    (g,) = torch.autograd.grad(loss, [run.model.stem[0].weight])
    health = facts._flow(src)
    assert not health.result.train
    assert health.result.layers[0].l2 == pytest.approx(g.norm().item(), rel=1e-4)
