"""The dead-unit advice follows the activation the units come from: a ReLU unit whose input
is never positive gets no gradient (dead: a leaky activation, a lower learning rate, He init),
while a GELU, SiLU, Mish or leaky unit there still gets one, so it is told that swapping in
LeakyReLU/ELU is no cure and what keeps its inputs below 0 is. Truth: autograd's gradient at
the forced-off channels' bias, zero or not, for every rectifier of the activation table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.activations import ACTIVATIONS
from cnnlab.diagnose import dead_units, findings

RECTIFIERS = [a for a in ACTIVATIONS.values() if a.rectifier]
LEAKY_ADVICE = "use LeakyReLU/ELU"


def net(activation: nn.Module) -> nn.Sequential:
    """conv -> activation -> pool -> linear; channels 0-3 forced to a pre-activation of -1
    everywhere (zero weights, bias -1): negative on every image."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight[:4] = 0.0
        conv.bias[:4] = -1.0
    return nn.Sequential(conv, activation, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)


def off_channels_gradient(model: nn.Sequential) -> torch.Tensor:
    """|d loss / d bias| of the forced-off channels, by autograd (train mode, as a step)."""
    x, y = data()
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, model[0].bias)
    model.eval()
    return grad[:4].abs()


def dead_finding(model: nn.Sequential):
    x, _ = data()
    dead = dead_units(model.eval(), x)
    assert [l.dead for l in dead.flagged] == [4]  # the four forced channels, no others
    (found,) = [f for f in findings(dead=dead) if f.code == "dead-units"]
    return found


@pytest.mark.parametrize("activation", RECTIFIERS, ids=lambda a: a.name)
def test_the_leaky_cure_is_advised_exactly_where_the_units_get_no_gradient(activation):
    model = net(activation.modules[0]())
    flat = bool((off_channels_gradient(model) == 0).all())  # truth: autograd
    found = dead_finding(model)
    assert (LEAKY_ADVICE in found.fix) == flat, (activation.name, found.fix)
    if not flat:
        assert f"{activation.name} is not flat below 0" in found.fix
        assert "still get a gradient" in found.fix and "learning rate" in found.fix
        assert f"({activation.name})" in found.message and "never positive" in found.message


def test_a_relu_net_keeps_its_advice_and_a_gelu_net_gets_the_new_one():
    relu, gelu = dead_finding(net(nn.ReLU())), dead_finding(net(nn.GELU()))
    assert relu.fix == (
        "lower the learning rate (or warm it up), use LeakyReLU/ELU, use He (Kaiming) init, "
        "add BatchNorm before the activation"
    )
    assert "channels never fire" in relu.message
    assert LEAKY_ADVICE not in gelu.fix and "LeakyReLU/ELU would not help" in gelu.fix
    assert "add a normalisation" in gelu.fix  # nothing normalises before it


def test_a_gelu_mlp_behind_layernorm_is_pointed_at_that_norm_s_bias():
    """A transformer's MLP: LayerNorm -> Linear -> GELU, half the hidden units held negative
    by the linear layer's bias: the advice names the bias, not a norm to add."""
    torch.manual_seed(0)
    hidden = nn.Linear(12, 8)
    with torch.no_grad():
        hidden.weight[:4] = 0.0
        hidden.bias[:4] = -1.0
    model = nn.Sequential(nn.Flatten(), nn.LayerNorm(12), hidden, nn.GELU(), nn.Linear(8, 3))
    x = torch.randn(16, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    dead = dead_units(model.eval(), x)
    (found,) = [f for f in findings(dead=dead) if f.code == "dead-units"]
    assert "gelu" in found.message and LEAKY_ADVICE not in found.fix
    assert "a normalisation precedes it" in found.fix and "add a normalisation" not in found.fix
