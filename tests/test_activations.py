"""The activation table against torch: each record's claims are checked numerically."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import cnnlab.layers
from cnnlab.design.activations import (
    ACTIVATION_MODULES,
    ACTIVATIONS,
    SPEC_ACTIVATIONS,
    activation_of,
    activation_of_call,
)
from cnnlab.errors import SpecError

GRID = torch.linspace(-60, 60, 24001, dtype=torch.float64)  # step 0.005
NAMES = sorted(ACTIVATIONS)


def _module(name: str) -> nn.Module:
    return ACTIVATIONS[name].modules[0]().double().eval()


def _call(name: str, fn, x: torch.Tensor) -> torch.Tensor:
    """fn applied to a copy of x with the module's default arguments (prelu: its weight)."""
    x = x.clone()
    if name == "prelu":
        return fn(x, torch.tensor([0.25], dtype=x.dtype))
    if name == "rrelu":
        return fn(x, training=False) if fn is F.rrelu else fn(x)
    return fn(x)


@pytest.mark.parametrize("name", NAMES)
def test_module_forward_is_the_first_function(name):
    """torch: each module's forward equals functions[0] (what the summary lets it stand for)."""
    a = ACTIVATIONS[name]
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 4
    with torch.no_grad():
        expected = _module(name)(x)
        assert torch.equal(_call(name, a.functions[0], x), expected)


@pytest.mark.parametrize("name", NAMES)
def test_every_function_computes_the_same(name):
    """torch: the F / torch / Tensor forms (and in-place ones) agree with functions[0]."""
    a = ACTIVATIONS[name]
    x = torch.randn(64, dtype=torch.float64) * 4
    expected = _call(name, a.functions[0], x)
    for fn in a.functions:
        if name == "rrelu" and fn is not F.rrelu:  # torch.rrelu(x) draws random slopes
            continue
        assert torch.allclose(_call(name, fn, x), expected), fn


@pytest.mark.parametrize("name", NAMES)
def test_torch_function_mode_sees_a_call_of_this_activation(name):
    """torch: the module's forward, seen by a TorchFunctionMode (as diagnose sees it), makes a
    call that activation_of_call maps back to the same record (ReLU6 through hardtanh)."""
    seen = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(activation_of_call(func, args, kwargs))
            return func(*args, **(kwargs or {}))

    with Spy():
        _module(name)(torch.randn(2, 3, dtype=torch.float64))
    assert ACTIVATIONS[name] in seen


@pytest.mark.parametrize("name", NAMES)
def test_zero_floor_claim(name):
    """Numerically: zero_floor <=> f(x) == 0 exactly for every x <= 0 on the grid."""
    with torch.no_grad():
        y = _module(name)(GRID[GRID <= 0])
    assert bool((y == 0).all()) == ACTIVATIONS[name].zero_floor


@pytest.mark.parametrize("name", NAMES)
def test_monotone_claim(name):
    """Numerically: monotone <=> f never decreases between neighbouring grid points (PReLU
    with a slope training can reach, -0.25: a learned slope guarantees nothing)."""
    module = _module(name)
    if name == "prelu":
        module.weight.data.fill_(-0.25)
    with torch.no_grad():
        y = module(GRID)
    assert bool((torch.diff(y) >= 0).all()) == ACTIVATIONS[name].monotone


@pytest.mark.parametrize("name", NAMES)
def test_rectifier_claim(name):
    """Numerically: the ReLU family is identity-like at x = 4 (within 10 %) and small at -4."""
    with torch.no_grad():
        y = _module(name)(torch.tensor([4.0, -4.0], dtype=torch.float64))
    relu_like = abs(float(y[0]) - 4) < 0.4 and -2 <= float(y[1]) <= 0
    assert relu_like == ACTIVATIONS[name].rectifier


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_saturation_claims(name):
    """Numerically: a saturating activation stays within its bounds, reaches both within its
    band at large |x| (the mask says so), and is not saturated at 0; a capped one (ReLU6)
    reaches its cap, and only the cap is masked; the others are not bounded on both sides."""
    a = ACTIVATIONS[name]
    with torch.no_grad():
        y = _module(name)(GRID)
    if a.band is None:
        assert a.bounds is None
        assert not a.saturated(y).any()
        return
    low, high = a.bounds
    assert float(y.min()) >= low and float(y.max()) <= high
    assert float(y[0]) <= low + a.band and float(y[-1]) >= high - a.band
    mask = a.saturated(y)
    assert bool(mask[0]) == (a.saturates is not None)  # a cap's floor is no saturation
    assert mask[-1] and not mask[len(GRID) // 2]


def test_sigmoid_band_is_where_the_derivative_is_small():
    """torch autograd: inside sigmoid's and tanh's 0.01 band the derivative is below 0.02."""
    x = GRID.clone().requires_grad_(True)
    for name in ("sigmoid", "tanh"):
        y = ACTIVATIONS[name].functions[0](x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert float(grad[ACTIVATIONS[name].saturated(y.detach())].max()) < 0.02


def test_activation_of_modules():
    assert activation_of(nn.ReLU6()) is ACTIVATIONS["relu6"]  # not its base class Hardtanh
    assert activation_of(nn.Hardtanh()) is ACTIVATIONS["hardtanh"]
    clipped = activation_of(nn.Hardtanh(0.0, 1.0))  # zero floor: a clipped ReLU
    assert clipped.name == "relu6" and clipped.bounds == (0.0, 1.0)
    assert activation_of(nn.Hardtanh(-2.0, 2.0)).bounds == (-2.0, 2.0)  # its own bounds
    assert activation_of(nn.Conv2d(1, 1, 1)) is None

    class MyReLU(nn.ReLU):
        pass

    assert activation_of(MyReLU()) is ACTIVATIONS["relu"]
    for a in ACTIVATIONS.values():
        for cls in a.modules:
            assert isinstance(cls(), ACTIVATION_MODULES)


def test_activation_of_call_resolves_hardtanh_as_relu6():
    x = torch.randn(3)
    assert activation_of_call(F.hardtanh, (x, 0.0, 6.0), {}) is ACTIVATIONS["relu6"]
    clipped = activation_of_call(F.hardtanh, (x,), {"min_val": 0.0})
    assert clipped.name == "relu6" and clipped.bounds == (0.0, 1.0)
    assert activation_of_call(F.hardtanh, (x, -0.5, 0.5)).bounds == (-0.5, 0.5)
    assert activation_of_call(F.hardtanh, (x,), {"max_val": 3.0}).bounds == (-1.0, 3.0)
    assert activation_of_call(F.relu6, (x,)) is ACTIVATIONS["relu6"]
    assert activation_of_call(F.hardtanh, (x,), {}) is ACTIVATIONS["hardtanh"]
    assert activation_of_call(torch.Tensor.relu_, (x,)) is ACTIVATIONS["relu"]
    assert activation_of_call(torch.sigmoid) is ACTIVATIONS["sigmoid"]
    assert activation_of_call(F.conv2d) is None


def test_spec_activations_and_their_builders():
    """The spec language's six, each built as its module type; bad arguments refused."""
    assert SPEC_ACTIVATIONS == ("relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh")
    for name in SPEC_ACTIVATIONS:
        assert isinstance(ACTIVATIONS[name].make(), ACTIVATIONS[name].modules)
    assert all(ACTIVATIONS[n].make is None for n in ACTIVATIONS if n not in SPEC_ACTIVATIONS)
    assert ACTIVATIONS["leaky_relu"].make(0.2).negative_slope == 0.2
    for name in SPEC_ACTIVATIONS:  # the public registry is the table's builders
        assert cnnlab.layers.ACTIVATIONS[name] is ACTIVATIONS[name].make
    assert ACTIVATIONS["gelu"].make("tanh").approximate == "tanh"
    for name, bad in [("relu", 0.1), ("leaky_relu", "x"), ("leaky_relu", True), ("gelu", 1)]:
        with pytest.raises(SpecError, match=name):
            ACTIVATIONS[name].make(bad)
