"""Diagnosis of models whose output is not one logits tensor, as people write them: a dict
(Hugging Face's ModelOutput), Inception's (logits, aux logits) in train mode only. Truth:
plain torch's forward hooks and autograd on the same model."""

from __future__ import annotations

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
