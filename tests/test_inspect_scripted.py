"""`inspect.trace` of TorchScript: its layers run where no hook sees them. The contract its
callers (the report's layers, probe, `default_layer`) rely on: an empty list for a model
scripted whole, whose "no layer" messages then name TorchScript (`scripted_whole`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import inspect
from cnnlab.errors import ExplainError


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()


@pytest.mark.parametrize("script", [torch.jit.script, lambda m: torch.jit.trace(m, X)])
def test_a_model_scripted_whole_traces_empty_and_its_callers_name_torchscript(script):
    scripted = script(_net())
    assert inspect.trace(scripted, X) == []
    assert "TorchScript" in inspect.scripted_whole(scripted)
    with pytest.raises(ExplainError, match="the model is TorchScript"):
        inspect.default_layer(scripted, X)


def test_a_scripted_child_is_left_out_and_the_other_layers_traced():
    """Truth: torch's forward hooks on the eager layers."""
    model = nn.Sequential(torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())))
    model.append(nn.AdaptiveAvgPool2d(1)).append(nn.Flatten()).eval()
    shapes = {}
    for name in ("1", "2"):
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, n=name: shapes.update({n: tuple(out.shape)})
        )
    model(X[:1])
    assert inspect.trace(model, X) == list(shapes.items())


X = torch.randn(2, 3, 16, 16)
