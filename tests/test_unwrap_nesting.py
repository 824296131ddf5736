"""Wrappers at the root of a model (nn.DataParallel, DDP, torch.compile, in any nesting) are
looked through; a wrapper inside the model (an nn.DataParallel held by an nn.Sequential) is a
layer of the user's model, named as torch's named_modules() names it (`0.module.2`). The
summary's rows and the names explain and diagnose accept are those, for both cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).eval()  # fmt: skip


DP = nn.DataParallel
NESTINGS = {  # the model, the prefix its root wrappers put before the net's names
    "DP(DP(net))": (lambda net: DP(DP(net)), "module.module."),
    "Sequential(DP(net))": (lambda net: nn.Sequential(DP(net)), ""),
    "DP(Sequential(DP(net)))": (lambda net: DP(nn.Sequential(DP(net))), "module."),
    "Sequential(DP(DP(net)))": (lambda net: nn.Sequential(DP(DP(net))), ""),
}


@pytest.mark.parametrize("nesting", NESTINGS)
def test_nested_wrappers_are_named_as_named_modules_without_the_roots(nesting):
    wrap, root = NESTINGS[nesting]
    net = _net()
    model, x = wrap(net), torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # torch's names of the net's leaves, the root wrappers' prefix dropped
    names = {id(m): n.removeprefix(root) for n, m in model.named_modules() if not m._modules}
    rows = [r.name for r in summary(model, input_size=(3, 8, 8)).rows]
    assert rows == [names[id(m)] for m in net]
    conv = names[id(net[2])]
    for given in (conv, root + conv):  # the shown name, and torch's full one
        torch.testing.assert_close(
            explain.gradcam(model, x, target=1, layer=given),
            explain.gradcam(net, x, target=1, layer="2"),
        )
    flow = diagnose.gradient_flow(model, (x, torch.tensor([0, 1])))
    assert [layer.name for layer in flow.layers] == [names[id(net[i])] for i in (0, 2, 6)]
