"""A summary describes only models that run: where torch's real CPU forward of batch 1
refuses a call that the meta trace would run (meta kernels that check less, the trace's
shape shortcuts; `design/summary/refusals.py`), summary raises one CnnlabError naming the
layer, the shape it got and torch's own error; where torch runs it, summary gives torch's
shapes. torch's real forward is the truth throughout.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError


class Call(nn.Module):
    """A layer whose forward is one functional call, f(x)."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def real(model: nn.Module, size: tuple[int, ...]) -> tuple[tuple[int, ...] | None, str, str]:
    """torch's output shape (one image) on a zero input of the model's dtype, or None, the
    innermost module running when torch raised (module hooks) and torch's error type."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    running: list[str] = []

    def done(module: nn.Module, inputs: tuple, output: object) -> None:
        running.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, i, n=name: running.append(n)))
        handles.append(module.register_forward_hook(done))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model.eval()(torch.zeros(1, *size, dtype=dtype))
    except Exception as err:  # noqa: BLE001 - any refusal of torch's is the truth
        return None, running[-1], type(err).__name__
    finally:
        for handle in handles:
            handle.remove()
    return tuple(out.shape[1:]), "", ""


def agrees(model: nn.Module, size: tuple[int, ...]) -> None:
    """summary's last row has torch's shape, or summary refuses as torch does, naming the
    layer torch raised in, the shape it got and torch's error."""
    shape, layer, error = real(model, size)
    if shape is not None:
        assert summary(model, size).rows[-1].output_shape == shape
        return
    with pytest.raises(CnnlabError) as info:
        summary(model, size)
    said = str(info.value)
    assert re.match(rf"layer {re.escape(layer)} \(\w+\) on a 1(×\d+)+ input: {error}: ", said), said


dims = st.integers(-6, 5)
ARGUMENT_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 3),
    st.sampled_from([10**30, True, False, None, "none", "tanh", "bad", (1, 2)]),
)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from([nn.Softmax, nn.LogSoftmax, nn.Softmin]),
    dim=dims,
    flat=st.booleans(),
)
def test_a_softmax_module_with_a_dim_out_of_range_is_refused_as_torch_refuses_it(kind, dim, flat):
    """nn.Softmax(dim=5) on a 4-D map: the meta kernel wrapped the dim around."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), *([nn.Flatten()] if flat else []), kind(dim=dim))
    agrees(model, (2, 6, 6))


CALLS = {
    "F.softmax": lambda d: lambda x: F.softmax(x, d),
    "F.log_softmax": lambda d: lambda x: F.log_softmax(x, dim=d),
    "Tensor.softmax": lambda d: lambda x: x.softmax(d),
    "torch.log_softmax": lambda d: lambda x: torch.log_softmax(x, d),
    "torch.sort": lambda d: lambda x: torch.sort(x, d)[0],
    "Tensor.sort": lambda d: lambda x: x.sort(dim=d).values,
    "torch.argsort": lambda d: lambda x: torch.argsort(x, d).float(),
    "softmax to int": lambda d: lambda x: F.softmax(x, d, dtype=torch.int32),
}


@settings(max_examples=80, deadline=None)
@given(call=st.sampled_from(sorted(CALLS)), dim=dims)
def test_a_dim_taking_call_torch_refuses_on_real_data_is_refused(call, dim):
    agrees(nn.Sequential(nn.Conv2d(2, 3, 3), Call(CALLS[call](dim))), (2, 6, 6))


@settings(max_examples=150, deadline=None)
@given(
    c=st.integers(1, 6),
    c_in=st.integers(1, 6),
    c_out=st.integers(1, 6),
    groups=st.integers(1, 3),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    out_pad=st.integers(0, 3),
    dilation=st.integers(1, 3),
    bias=st.booleans(),
    side=st.integers(1, 6),
)
def test_a_transposed_conv_torch_refuses_is_refused(
    c, c_in, c_out, groups, k, stride, padding, out_pad, dilation, bias, side
):
    """Input channels, groups, output_padding: the meta kernel checked none of them."""
    try:
        up = nn.ConvTranspose2d(c_in, c_out, k, stride, padding, out_pad, groups, bias, dilation)
    except ValueError:
        assume(False)  # the constructor refuses it: no model to summarize
    agrees(nn.Sequential(nn.Identity(), up), (c, side, side))


def conv_with(weight: tuple, bias: tuple | None, dtype=torch.float32):
    w = torch.zeros(weight)
    b = None if bias is None else torch.zeros(bias, dtype=dtype)
    return Call(lambda x: F.conv2d(x, w, b))


@pytest.mark.parametrize(
    "layer",
    [
        conv_with((3, 2, 3, 3), (3,)),
        conv_with((3, 2, 3, 3), (4,)),
        conv_with((3, 2, 3, 3), (3, 1)),
        conv_with((3, 2, 3, 3), (3,), torch.float64),
        Call(lambda x: F.conv_transpose2d(x, torch.zeros(2, 3, 3, 3), torch.zeros(4))),
        Call(lambda x: x.prelu(torch.zeros(3))),
        Call(lambda x: x.prelu(torch.zeros(2, dtype=torch.float64))),
        Call(lambda x: x.prelu(torch.zeros(2))),
        Call(lambda x: x @ torch.zeros(6, 4, dtype=torch.float64)),
        Call(lambda x: torch.matmul(x, torch.zeros(6, 4))),
    ],
)
def test_functional_weights_that_do_not_fit_are_refused_as_torch_refuses_them(layer):
    agrees(nn.Sequential(nn.Identity(), layer), (2, 6, 6))


@pytest.mark.parametrize(
    "layer", [nn.Conv2d(2, 0, 3), nn.ConvTranspose2d(2, 0, 3), conv_with((0, 2, 3, 3), None)]
)
def test_a_conv_of_no_output_channels_is_refused_as_torch_refuses_it(layer):
    """Its meta kernel (and the Conv2d shortcut) made an empty map; torch's CPU kernel
    refuses an empty weight."""
    agrees(nn.Sequential(nn.Identity(), layer), (2, 6, 6))
    assert real(nn.Sequential(nn.Identity(), layer), (2, 6, 6))[0] is None


def net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.GroupNorm(2, 4), nn.LayerNorm(6),
        nn.InstanceNorm2d(4, affine=True), nn.Flatten(), nn.Linear(144, 3),
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    other=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    at=st.sampled_from([0, 1, 3, 4, 5, 7]),
)
def test_a_layer_of_another_dtype_than_its_input_is_refused_as_torch_refuses_it(dtype, other, at):
    """The meta trace's input has the model's dtype (its first parameter's), as the real
    forward's; a layer left in another dtype is refused where torch's CPU kernel refuses it
    (conv, linear and the norms checked no dtype on meta, nor did the BatchNorm shortcut)."""
    model = net().to(dtype)
    model[at].to(other)
    agrees(model, (2, 8, 8))


ARGUMENTS = {  # each function's arguments after its input, as torch's docs name them
    "dropout": ["p", "training", "inplace"],
    "dropout2d": ["p", "training", "inplace"],
    "alpha_dropout": ["p", "training", "inplace"],
    "hardtanh": ["min_val", "max_val", "inplace"],
    "relu6": ["inplace"],
    "gelu": ["approximate"],
    "leaky_relu": ["negative_slope", "inplace"],
    "elu": ["alpha", "inplace"],
    "celu": ["alpha", "inplace"],
    "selu": ["inplace"],
    "rrelu": ["lower", "upper", "training", "inplace"],
    "softplus": ["beta", "threshold"],
    "hardswish": ["inplace"],
    "silu": ["inplace"],
    "relu": ["inplace"],
}


@settings(max_examples=200, deadline=None)
@given(call=st.sampled_from(sorted(ARGUMENTS)), data=st.data())
def test_an_activation_argument_torch_refuses_is_refused(call, data):
    """The shape-keeping shortcut made these outputs without torch's own argument checks
    (dropout's p, hardtanh's bounds, gelu's approximate, celu's alpha 0, rrelu's bounds, a
    string or None for a number, 10**30), positional or by keyword."""
    f = getattr(F, call)
    names = ARGUMENTS[call]
    name, value = data.draw(st.sampled_from(names)), data.draw(ARGUMENT_VALUES)
    if data.draw(st.booleans()):
        layer = Call(lambda x: f(x, **{name: value}))
    else:
        layer = Call(lambda x: f(x, *([value] * (names.index(name) + 1))))
    agrees(nn.Sequential(nn.Conv2d(2, 2, 1), layer), (2, 4, 4))


def test_a_float64_model_is_summarized_as_a_float32_one():
    """A whole model in float64 runs on a float64 input: its summary is the float32 one."""
    assert summary(net().double(), (2, 8, 8)).rows == summary(net(), (2, 8, 8)).rows


def test_an_argument_set_after_construction_is_judged_when_it_runs():
    """nn.Hardtanh's constructor refuses min_val above max_val, nn.Dropout's p outside
    [0, 1]; set after construction, the real forward refuses them, and so does summary."""
    clip, drop = nn.Hardtanh(), nn.Dropout()
    clip.min_val, drop.p = 2.0, 2.0
    for module in (clip, drop):
        agrees(nn.Sequential(nn.Identity(), module), (2, 4, 4))
        assert real(nn.Sequential(nn.Identity(), module), (2, 4, 4))[0] is None


def _activation_modules() -> list[type[nn.Module]]:
    """torch.nn's activation and dropout modules that build with no argument."""
    names = [*dir(nn.modules.activation), "Dropout", "Dropout2d", "AlphaDropout"]
    found = []
    for kind in {
        k
        for k in map(getattr, [nn] * len(names), names, [None] * len(names))
        if isinstance(k, type)
    }:
        if issubclass(kind, nn.Module) and kind is not nn.Module:
            try:
                kind()
            except TypeError:
                continue  # needs arguments (Threshold, MultiheadAttention)
            found.append(kind)
    return sorted(found, key=lambda k: k.__name__)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(_activation_modules()), data=st.data())
def test_an_activation_module_with_arguments_torch_refuses_is_refused(kind, data):
    """nn.GELU('bad'), nn.Hardtanh(2, 1), nn.Dropout's p set to 2 after construction: the
    trace made a shape-keeping module's output without its forward; torch's real forward
    is the judge, whatever the argument (one set after construction, as a user may)."""
    module = kind()
    names = sorted(k for k in vars(module) if not k.startswith("_") and k != "training")
    assume(names)
    setattr(module, data.draw(st.sampled_from(names)), data.draw(ARGUMENT_VALUES))
    agrees(nn.Sequential(nn.Conv2d(2, 2, 1), module), (2, 4, 4))


@pytest.mark.parametrize(
    "module",
    [nn.GELU("bad"), nn.LeakyReLU("a"), nn.ELU(alpha="x"), nn.CELU(0.0), nn.RReLU(0.5, 0.1)],
)
def test_activation_modules_torch_refuses_are_refused_naming_them(module):
    """Examples of refusals.py's docstring, each refused naming its layer and shape."""
    assert real(nn.Sequential(nn.Identity(), module), (2, 4, 4))[0] is None
    with pytest.raises(CnnlabError, match=rf"layer 1 \({type(module).__name__}\) on a 1×2×4×4"):
        summary(nn.Sequential(nn.Identity(), module), (2, 4, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_activation_torch_surely_runs_is_not_run_to_be_judged(monkeypatch, dtype):
    """nn.ReLU, nn.SiLU, nn.Sigmoid (no argument but `inplace`), nn.ReLU6's own bounds,
    nn.Dropout's p in [0, 1] and nn.GELU's two approximations are arguments torch runs:
    the summary runs no forward on a real zero to judge them (`shortcuts._runs`), and
    torch does run each of them on one."""
    from cnnlab.design.summary import refusals

    layers = [
        nn.ReLU(), nn.ReLU(inplace=True), nn.SiLU(), nn.Sigmoid(), nn.ReLU6(),
        nn.ReLU6(inplace=True), nn.Dropout(0.0), nn.Dropout(0.2), nn.Dropout(1.0),
        nn.GELU(), nn.GELU("tanh"),
    ]  # fmt: skip
    runs: list[object] = []
    judge = refusals._torch_error
    monkeypatch.setattr(refusals, "_torch_error", lambda *a: runs.append(a) or judge(*a))
    model = nn.Sequential(nn.Conv2d(2, 2, 1), *layers).to(dtype)
    assert [r.output_shape for r in summary(model, (2, 4, 4)).rows] == [(2, 4, 4)] * 12
    assert runs == []
    for layer in layers:  # the rule's ground: torch's own forward runs them
        assert refusals.refused_forward(layer.eval(), dtype) is None
