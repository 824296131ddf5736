"""The explain functions compute on the model in eval mode (running BatchNorm statistics, no
dropout) and restore its mode; their docstrings say so. A train-mode model's saliency equals
Captum's on `model.eval()`, not on the model as handed in (Captum's runs it as it is: batch
statistics, dropout), which saliency's docstring named as its equal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain

captum = pytest.importorskip("captum.attr")

EXPLAINERS = [
    explain.saliency,
    explain.smoothgrad,
    explain.gradcam,
    explain.feature_maps,
    explain.activation_maximization,
    explain.linear_probe,
]


def _train_mode_net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(6 * 10 * 10, 4),
    )  # fmt: skip
    with torch.no_grad():
        model(torch.randn(16, 3, 10, 10) * 3 + 1)  # running statistics far from 0 and 1
    return model.train()


@pytest.mark.parametrize("function", EXPLAINERS, ids=lambda f: f.__name__)
def test_each_docstring_says_eval_mode(function):
    assert "eval mode" in " ".join(function.__doc__.lower().split())


def test_saliency_of_a_train_mode_model_is_captums_on_its_eval_mode():
    model = _train_mode_net()
    x, t = torch.randn(3, 3, 10, 10), [0, 1, 3]
    got = explain.saliency(model, x, target=t)
    assert model.training and all(m.training for m in model.modules())
    ref = captum.Saliency(model.eval()).attribute(x, target=t, abs=True).amax(1)
    assert torch.allclose(got, ref, atol=1e-6)
    torch.manual_seed(2)
    as_is = captum.Saliency(model.train()).attribute(x, target=t, abs=True).amax(1)
    assert not torch.allclose(got, as_is, atol=1e-3)


def test_feature_maps_of_a_train_mode_model_are_its_eval_outputs():
    model = _train_mode_net()
    x = torch.randn(3, 3, 10, 10)
    got = explain.feature_maps(model, x, ["1"])["1"]
    assert model.training
    with torch.no_grad():
        ref = model.eval()[:2](x)
    assert torch.allclose(got, ref, atol=1e-6)
