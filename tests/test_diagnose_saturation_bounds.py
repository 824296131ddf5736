"""Saturated shares at each activation's own bounds: a ReLU6 at its cap, a hardtanh at its
min_val/max_val (module or functional call), not at the table's defaults."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.diagnose import activation_stats, findings


def _images(n: int = 40) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, 3, 6, 6) * 4  # spread so some outputs reach each bound


def _share(mask: torch.Tensor) -> float:
    return float(mask.float().mean())


def _flat(out: torch.Tensor) -> torch.Tensor:
    return out.flatten(1)  # (B, K) logits of a model that ends at its activation


def _layer(model: nn.Module, x: torch.Tensor):
    (layer,) = activation_stats(model, x, batch_size=16, output=_flat).layers
    return layer


def test_relu6_counts_its_cap():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6())
    x = _images()
    with torch.no_grad():
        y = model(x)
    layer = _layer(model, x)
    assert layer.kind == "relu6" and layer.max == 6.0
    assert 0 < _share(y == 6) < 1
    # the cap only: outputs at the floor 0 are the dead-unit statistics' share
    assert layer.saturated == pytest.approx(_share(y == 6))


def test_hardtanh_counts_its_own_bounds():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Hardtanh(-2.0, 2.0))
    x = _images()
    with torch.no_grad():
        y = model(x)
    layer = _layer(model, x)
    assert layer.kind == "hardtanh"
    assert _share(y.abs() >= 1) > _share(y.abs() == 2) > 0  # the defaults ±1 would differ
    assert layer.saturated == pytest.approx(_share(y.abs() == 2))


class Functional(nn.Module):
    def __init__(self, call) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.call = call

    def forward(self, x):
        return self.call(self.conv(x))


@pytest.mark.parametrize(
    "call, kind, saturated",
    [
        (lambda z: F.hardtanh(z, -0.5, 0.5), "hardtanh", lambda y: y.abs() == 0.5),
        (lambda z: F.hardtanh(z, min_val=-0.5, max_val=0.5), "hardtanh", lambda y: y.abs() == 0.5),
        (lambda z: F.hardtanh(z, 0.0, 2.0), "relu6", lambda y: y == 2),  # a clipped ReLU
        (F.relu6, "relu6", lambda y: y == 6),
    ],
)
def test_functional_calls_count_their_arguments_bounds(call, kind, saturated):
    model = Functional(call)
    x = _images()
    with torch.no_grad():
        y = model(x)
    layer = _layer(model, x)
    assert layer.kind == kind
    assert 0 < _share(saturated(y)) < 1
    assert layer.saturated == pytest.approx(_share(saturated(y)))


def test_json_gives_relu6_its_band():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6())
    d = activation_stats(model, _images(8), output=_flat).to_dict()
    assert d["saturation_bands"]["relu6"] == 0.0
    assert d["layers"][0]["saturated"] is not None


def test_relu6_net_has_no_saturating_lint():
    """Guard: ReLU6 counts as saturated in diagnose, yet is no squasher for the summary's
    lint on saturating activations feeding hidden layers (MobileNetV2 stays silent)."""
    layers = []
    for _ in range(6):
        layers += [nn.Conv2d(4, 4, 3, padding=1), nn.ReLU6()]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert "saturating" not in {w.code for w in summary(model, (4, 8, 8)).warnings}


def _pinned(act: nn.Module) -> tuple[nn.Module, torch.Tensor]:
    """A 1×1 conv whose bias of +10 drives nearly every output to the activation's top."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), act)
    with torch.no_grad():
        model[0].bias.fill_(10.0)
    return model, _images() / 8  # inputs within about ±1.5: the bias dominates


@pytest.mark.parametrize(
    "act, kind, top",
    [(nn.ReLU6(), "relu6", 6.0), (nn.Hardtanh(0.0, 3.0), "relu6", 3.0)],
)
def test_a_capped_rectifier_is_not_told_to_use_relu_instead_of_a_squasher(act, kind, top):
    """A ReLU6 (or hardtanh with floor 0) pinned at its cap is a rectifier already: the
    advice is the pre-activations' scale, not "use ReLU in hidden layers" (sigmoid/tanh's)."""
    model, x = _pinned(act)
    with torch.no_grad():
        y = model(x)
    assert _share(y == top) > 0.5  # the truth: outputs exactly at the cap, counted by torch
    stats = activation_stats(model, x, output=_flat)
    (found,) = findings(acts=stats)
    assert found.code == "saturated" and stats.layers[0].kind == kind
    assert f"{_share(y == top):.0%} of outputs at its cap {top:g}" in found.message
    assert "BatchNorm" in found.fix and "replace" not in found.fix, found.fix
    assert not found.fix.startswith("use ReLU"), found.fix


@pytest.mark.parametrize(
    "act, kind",
    [(nn.Hardtanh(-2.0, 2.0), "hardtanh"), (nn.Sigmoid(), "sigmoid"), (nn.Tanh(), "tanh")],
)
def test_a_squasher_is_told_to_use_relu_in_its_place(act, kind):
    model, x = _pinned(act)
    (found,) = findings(acts=activation_stats(model, x, output=_flat))
    assert f"({kind}):" in found.message and "saturated" in found.message
    assert found.fix.startswith(f"replace {kind} with ReLU in hidden layers"), found.fix
