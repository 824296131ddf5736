"""torch.roll's output made from its input's shape on meta (`shapes.made`; torch's meta roll is
its Python reference, about 1 ms a call, 30 a Swin-T summary): shape and strides equal torch's
real roll; arguments torch refuses, and inputs not contiguous, are left to torch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.design.summary import shapes as S


def _real_and_meta(shape, layout):
    x = torch.randn(shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":  # a view with gaps
        x = torch.randn(*shape[:-1], shape[-1] * 2)[..., ::2]
    return x, torch.empty_strided(x.shape, x.stride(), device="meta")


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 5)] * 4),
    layout=st.sampled_from(["contiguous", "channels_last", "sliced"]),
    moves=st.lists(st.tuples(st.integers(-7, 7), st.integers(-4, 3)), min_size=1, max_size=3),
    method=st.booleans(),
)
def test_made_roll_has_torchs_shape_and_strides(shape, layout, moves, method):
    x, m = _real_and_meta(shape, layout)
    shifts, dims = tuple(s for s, _ in moves), tuple(d for _, d in moves)
    func = torch.Tensor.roll if method else torch.roll
    made = S.made(func, (m, shifts, dims), {})
    want = func(x, shifts, dims)
    if not x.is_contiguous():  # a channels-last map: torch's layout depends on the dims
        assert made is None  # left to torch
        return
    assert made is not None and made.is_meta
    assert (made.shape, made.stride()) == (want.shape, want.stride())


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((1, (2, 3)), {}),  # one shift for two dims
        (((1, 1), (2, 9)), {}),  # a dim out of range
        ((1,), {}),  # no dims: torch flattens
        ((1.5, 2), {}),  # a float shift
        ((), {"shifts": 1, "dims": 4}),
    ],
)
def test_arguments_torch_refuses_or_flattens_are_left_to_torch(args, kwargs):
    _, m = _real_and_meta((1, 2, 3, 4), "contiguous")
    assert S.made(torch.roll, (m, *args), kwargs) is None


def test_keyword_arguments_are_read():
    x, m = _real_and_meta((1, 2, 3, 4), "contiguous")
    made = S.made(torch.roll, (m,), {"shifts": (1, -1), "dims": (2, 3)})
    want = torch.roll(x, shifts=(1, -1), dims=(2, 3))
    assert (made.shape, made.stride()) == (want.shape, want.stride())
