"""A layer under a compiled child (`nn.Sequential(torch.compile(net))`) is named by the
summary without torch.compile's `_orig_mod` (`0.2`); explain takes that name as well as
torch's own (`0._orig_mod.2`), and both mean the same module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain, summary
from cnnlab.inspect.order import resolve_layer


def _nets():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    return net, nn.Sequential(torch.compile(net))


def test_the_summary_s_name_resolves_to_torch_s_module():
    """Truth: model.named_modules() under torch's name."""
    _, model = _nets()
    shown = [row.name for row in summary(model, (1, 12, 12)).rows]
    assert "0.2" in shown and "0._orig_mod.2" not in shown
    assert resolve_layer(model, "0.2") is dict(model.named_modules())["0._orig_mod.2"]


@pytest.mark.parametrize("name", ["0.2", "0._orig_mod.2"])
def test_gradcam_and_feature_maps_take_the_summary_s_name(name):
    """Truth: the same calls on the plain net, layer "2"."""
    net, model = _nets()
    x = torch.randn(2, 1, 12, 12)
    assert torch.allclose(explain.gradcam(model, x, layer=name), explain.gradcam(net, x, layer="2"))
    maps = explain.feature_maps(model, x, [name])[name]
    assert torch.allclose(maps, explain.feature_maps(net, x, ["2"])["2"])


def test_an_unknown_name_is_still_refused_with_the_valid_names():
    _, model = _nets()
    with pytest.raises(Exception, match=r"unknown layer '0\.9'.*0\._orig_mod\.2"):
        resolve_layer(model, "0.9")
