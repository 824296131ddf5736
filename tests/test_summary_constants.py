"""Values a forward makes from no input (`summary/constants.py`): read on the meta trace, not by
a real forward; met by the traced map, their meta twins; written by it, unknown after. Truth:
the rows of torch's own real forward (forward hooks) and the user's tensors left as they were."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import summary
from cnnlab.design.summary import _trace_module
from cnnlab.design.summary.constants import planned_size
from test_summary_zoo import FAMILIES, make


def real_rows(model: nn.Module, size: tuple[int, ...]) -> list[tuple[str, tuple]]:
    """(name, output shape of one image) of every leaf call of a real forward."""
    rows = []
    for name, m in model.named_modules():
        if not list(m.children()):
            m.register_forward_hook(lambda m, a, out, name=name: rows.append((name, out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, *size))
    return rows


def summary_rows(model: nn.Module, size: tuple[int, ...]) -> list[tuple[str, tuple]]:
    return [(r.name, r.output_shape) for r in summary(model, size).rows if r.name]


class ReadsItsMask(nn.Module):
    """Reads values of tensors it makes: a mask of ones (`.all()`, as transformers' mask code
    does), position ids (`.max().item()`), a scale made on the CPU with no device given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.skip = nn.Conv2d(3, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = self.conv(x)
        mask = torch.ones(x.shape[0], 16, device=x.device).to(device=x.device, dtype=torch.bool)
        if not mask.all():
            y = self.skip(x)
        positions = torch.arange(y.shape[-1], device=x.device)
        steps = int(positions.max().item()) + 1  # the width: 16
        y = y[..., :steps] * torch.tensor(0.5) + positions.float()
        return self.head(y.mean((2, 3)))


def test_values_made_in_the_forward_are_read_on_the_meta_trace():
    model = ReadsItsMask()
    trace = _trace_module(model, (3, 16, 16))
    assert trace.real_forward is None  # (before: `Tensor.item() cannot be called on meta`)
    assert summary_rows(model, (3, 16, 16)) == real_rows(model, (3, 16, 16))
    assert [r.receptive_field for r in summary(model, (3, 16, 16)).rows[:1]] == [3]


class FillsABuffer(nn.Module):
    """Writes the traced map into a buffer of zeros it made, then reads the buffer's values
    (its conv's bias is ones: on an input of zeros they are not zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        nn.init.ones_(self.conv.bias)
        self.a, self.b = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 1)

    def forward(self, x):
        buf = torch.zeros(x.shape[0], 4, 8, 8, device=x.device)
        buf[:] = self.conv(x)
        return self.a(buf) if buf.sum().item() != 0 else self.b(buf)


def test_a_made_tensor_written_by_the_traced_map_has_unknown_values_after():
    """Its zeros are stale after the write: the branch read from them would be `b`. The real
    forward (input of zeros: the conv's output is its bias of ones) takes `a`, and takes over."""
    model = FillsABuffer()
    assert _trace_module(model, (3, 8, 8)).real_forward is not None
    assert summary_rows(model, (3, 8, 8)) == real_rows(model, (3, 8, 8))
    assert [name for name, _ in summary_rows(model, (3, 8, 8))] == ["conv", "a"]


class WritesItsBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("seen", torch.zeros(4))

    def forward(self, x):
        self.seen.add_(torch.ones(4))  # a user's buffer written with a constant
        return self.conv(x) + self.seen.view(1, 4, 1, 1)


def test_the_users_tensors_are_not_written_through_a_constant():
    model = WritesItsBuffer()
    rows = summary_rows(model, (3, 8, 8))
    assert torch.equal(model.seen, torch.zeros(4))
    assert _trace_module(model, (3, 8, 8)).real_forward is None
    assert rows == [("conv", (4, 6, 6))]


def test_a_large_tensor_made_from_nothing_stays_on_meta():
    """A buffer of more than constants.MOST elements is not made for real: reading its
    values needs the real forward, as before."""

    class Big(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            big = torch.zeros(1 << 21, device=x.device)
            return self.conv(x) + big.sum().item()

    assert _trace_module(Big(), (3, 8, 8)).real_forward is not None


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_zoo_family_is_traced_on_meta(name):
    """No real forward takes over on any of them (its rows would be right, only slow: a
    guard nothing else gives). Perceiver IO: transformers' mask code asks its mask of ones
    whether it is all ones (`mask.all()`); MONAI's HighResNet asks `torch.as_tensor` of its
    traced map, which stays the trace's."""
    model, size = make(name)
    assert _trace_module(model, size).real_forward is None


def test_a_constant_met_by_the_map_gives_torchs_shapes():
    """A mask made in the forward, broadcast against the traced map (its meta twin)."""

    class Masks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            keep = torch.tril(torch.ones(x.shape[-2], x.shape[-1], device=x.device))
            return self.pool(F.relu(self.conv(x)).masked_fill(keep == 0, 0.0))

    model = Masks()
    assert _trace_module(model, (3, 8, 8)).real_forward is None
    assert summary_rows(model, (3, 8, 8)) == real_rows(model, (3, 8, 8))


_numbers = st.integers(-6, 40) | st.floats(-6, 40, allow_nan=False).map(lambda v: round(v, 2))
_sizes = st.lists(st.integers(0, 6), max_size=3).map(tuple)
_n = st.integers(0, 9)
_no_kwargs = st.just({})
_shaped = st.sampled_from([torch.zeros, torch.ones, torch.empty, torch.rand, torch.randn])


def _call(func, args, kwargs=_no_kwargs):
    return st.tuples(st.just(func) if callable(func) else func, args, kwargs)


_factory_calls = st.one_of(
    _call(torch.arange, st.lists(_numbers, min_size=1, max_size=3).map(tuple)),
    _call(torch.arange, st.tuples(_numbers), st.fixed_dictionaries({"step": _numbers})),
    _call(torch.arange, st.tuples(_numbers), st.fixed_dictionaries({"end": _numbers})),
    _call(torch.arange, st.just(()), st.fixed_dictionaries({"start": _numbers, "end": _numbers})),
    _call(torch.eye, st.tuples(_n) | st.tuples(_n, _n)),
    _call(torch.eye, st.just(()), st.fixed_dictionaries({"n": _n, "m": _n})),
    _call(_shaped, _sizes),  # torch.zeros(2, 3)
    _call(_shaped, _sizes.map(lambda size: (size,))),  # torch.zeros((2, 3))
    _call(_shaped, st.integers(0, 9).map(lambda n: (n,))),  # torch.zeros(5)
    _call(_shaped, st.just(()), st.fixed_dictionaries({"size": _sizes})),
    _call(torch.full, st.tuples(_sizes, st.just(2.0))),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_factory_calls)
def test_the_planned_size_of_a_factory_is_the_size_torch_makes(call):
    """A factory asked for the meta device is made on the CPU straight away where its size
    follows from its numbers: that size is torch's own (or unknown: None), never less."""
    func, args, kwargs = call
    try:
        want = func(*args, **kwargs).numel()
    except (RuntimeError, ValueError, TypeError):
        return  # torch refuses it; the trace leaves such a call to torch
    found = planned_size(func, args, kwargs)
    assert found is None or found == want
