"""The vanishing-gradient advice names what the net computes: it told every net, a ReLU6 net
too, to "replace sigmoid/tanh with ReLU, add BatchNorm", whether it had them or not. What the
forward computes (`GradientFlow.makeup`) is checked against the modules the net defines."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.diagnose import findings, gradient_flow


class Mixed(nn.Module):
    """Activations and normalisations as modules and as functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.Sigmoid()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu6(torch.tanh(self.act(self.bn(self.conv(x)))))
        return self.fc(F.layer_norm(x.mean(dim=(2, 3)), (4,)))


def chain(act: type[nn.Module], depth: int = 10, bn_scale: float | None = None) -> nn.Sequential:
    """conv, then depth × ([BatchNorm,] act, conv), then a linear head; BatchNorm's weight
    set to bn_scale."""
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    for _ in range(depth):
        norm = [nn.BatchNorm2d(8)] if bn_scale is not None else []
        layers += [*norm, act(), nn.Conv2d(8, 8, 3, padding=1)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and bn_scale is None:
            nn.init.normal_(m.weight, std=0.02)  # small weights: the gradient shrinks each layer
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, bn_scale)
    return net


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)


def vanishing_fix(net: nn.Module, **kw) -> str:
    torch.manual_seed(0)
    flow = gradient_flow(net, batch(), **kw)
    assert flow.vanishing, flow.ratio
    (found,) = [f for f in findings(flow=flow) if f.code == "vanishing-gradients"]
    return found.fix


def test_the_makeup_is_what_the_forward_computes():
    """Truth: the modules Mixed defines, and its functional calls named as every diagnose
    table names them (`<module>.<kind>()`, at the top level `<kind>()`)."""
    makeup = gradient_flow(Mixed(), batch()).makeup
    assert makeup.activations == (("act", "sigmoid"), ("tanh()", "tanh"), ("relu6()", "relu6"))
    assert makeup.norms == (("bn", "batch_norm"), ("layer_norm()", "layer_norm"))
    assert makeup.saturating == (("act", "sigmoid"), ("tanh()", "tanh"))
    assert makeup.hidden == ()


def test_a_sigmoid_net_is_told_to_replace_its_sigmoids_by_name():
    net = chain(nn.Sigmoid)
    sites = [name for name, m in net.named_modules() if isinstance(m, nn.Sigmoid)]
    fix = vanishing_fix(net)
    assert fix.startswith(f"replace sigmoid ({', '.join(sites[:4])} ...) with ReLU"), fix
    assert "tanh" not in fix and "add BatchNorm after each conv (it has none)" in fix


def test_a_relu6_net_is_not_told_to_replace_sigmoid_or_tanh():
    fix = vanishing_fix(chain(nn.ReLU6))
    assert "sigmoid" not in fix and "tanh" not in fix, fix
    assert fix.startswith("its activations (relu6) do not saturate: add BatchNorm"), fix
    assert "or use fewer layers (it has 12 with weights)" in fix


def test_a_net_with_batchnorm_is_not_told_to_add_it():
    """BatchNorm's small weight (0.01) shrinks the gradient at each layer: first/last about
    0.009, vanishing below the threshold 0.05."""
    fix = vanishing_fix(chain(nn.ReLU6, bn_scale=0.01), vanish_ratio=0.05)
    assert "BatchNorm" not in fix and "sigmoid" not in fix, fix
    assert fix.startswith("its activations (relu6) do not saturate: add residual"), fix


def test_a_scripted_net_is_told_what_was_not_looked_into():
    """TorchScript runs its calls where no hook sees them: no activation seen is no
    evidence that none saturates."""
    fix = vanishing_fix(torch.jit.script(chain(nn.Sigmoid)))
    assert fix.startswith(
        "replace any sigmoid/tanh inside the whole model (TorchScript, not looked into) with "
        "ReLU, add BatchNorm after each conv (none seen)"
    ), fix
