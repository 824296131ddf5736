"""torch's activation modules and functions that are compositions in Python (Softsign,
Tanhshrink), or kernels torch does not tag pointwise (LogSigmoid), softmin (softmax of −x),
and the no-op complex views of a real map (conj, real): each followed as what it is. Truth:
torch's own forward shapes, autograd's extent of one output unit, the geometry by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import summary
from cnnlab.design.activations import activation_of


def extent(model: nn.Module, size: tuple[int, ...]) -> int:
    """Rows of the input that reach the output's centre unit, by autograd (one channel)."""
    x = torch.randn(1, *size, requires_grad=True)
    y = model(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return int(x.grad[0].abs().sum((0, 2)).gt(0).sum())


ELEMENTWISE = [nn.Softsign(), nn.Tanhshrink(), nn.LogSigmoid(), nn.Softmin(1)]


@pytest.mark.parametrize("act", ELEMENTWISE, ids=lambda m: type(m).__name__)
def test_each_is_followed_with_torchs_shapes_and_autograds_field(act):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), act, nn.Conv2d(4, 4, 3, padding=1))
    s = summary(model, (3, 12, 12))
    assert not [w for w in s.warnings if w.code == "unfollowed"]
    assert [r.receptive_field for r in s.rows] == [3, 3, 5] == [3, 3, extent(model, (3, 12, 12))]
    with torch.no_grad():
        shapes = [tuple(model[: i + 1](torch.zeros(1, 3, 12, 12)).shape[1:]) for i in range(3)]
    assert [r.output_shape for r in s.rows] == shapes


def test_the_table_knows_them_so_diagnose_does_too():
    found = {type(m).__name__: activation_of(m) for m in ELEMENTWISE[:3]}
    assert {k: v.name for k, v in found.items()} == {
        "Softsign": "softsign", "Tanhshrink": "tanhshrink", "LogSigmoid": "logsigmoid",
    }  # fmt: skip
    x = torch.linspace(-1e4, 1e4, 20001)
    assert found["Softsign"].bounds == (-1.0, 1.0)
    assert bool((F.softsign(x).abs() < 1).all())  # the bounds torch keeps


def test_softsign_is_a_squasher_for_the_saturating_lint():
    """§4.2: stacked squashers starve the layers before them of gradient, tanh's case."""
    blocks = [nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Softsign()) for _ in range(4)]
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), *blocks, nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 10))  # fmt: skip
    assert "saturating" in {w.code for w in summary(model, (3, 16, 16)).warnings}


def test_a_softmin_output_is_probabilities():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10), nn.Softmin(1))  # fmt: skip
    lints = [w for w in summary(model, (3, 16, 16)).warnings if w.code == "probabilities-out"]
    assert len(lints) == 1 and "F.softmin" in lints[0].message
    assert torch.allclose(model(torch.randn(2, 3, 16, 16)).sum(1), torch.ones(2))


class ComplexViews(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.b(torch.real(self.a(x).conj()))


def test_conj_and_real_of_a_real_map_are_the_map():
    model = ComplexViews()
    s = summary(model, (3, 10, 10))
    assert not [w for w in s.warnings if w.code == "unfollowed"]
    assert [(r.name, r.receptive_field) for r in s.rows] == [("a", 3), ("b", 5)]
    assert extent(model, (3, 10, 10)) == 5
