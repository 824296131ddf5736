"""The small shape helpers of cnnlab.summary's trace against their truths, on drawn cases:
`broadcast` against torch.broadcast_shapes, `field_step` against geometry.rf_step, `replaced`
against namedtuple._replace, the axes of a slice index against torch's strides, and the shape of
a cat against torch.cat on meta."""

from __future__ import annotations

from dataclasses import astuple

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import geometry
from cnnlab.design.summary.axes import index as axes_index
from cnnlab.design.summary.calls import field_step
from cnnlab.design.summary.facts import Field
from cnnlab.design.summary.shapes import _cat_shape as cat_shape
from cnnlab.design.summary.shapes import broadcast
from cnnlab.design.summary.tags import Tag, replaced

shapes = st.lists(st.integers(0, 3), max_size=4).map(tuple)


@settings(max_examples=200, deadline=None)
@given(a=shapes, b=shapes)
def test_broadcast_equals_torchs_broadcast_shapes(a, b):
    try:
        expected = tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        expected = None
    assert broadcast(a, b) == expected


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 50),
    jump=st.integers(1, 16),
    start=st.integers(-20, 20).map(lambda s: s / 2),
    k=st.integers(1, 7),
    s=st.integers(1, 4),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
)
def test_field_step_equals_geometrys_rf_step(size, jump, start, k, s, p, d):
    expected = geometry.rf_step(geometry.RF(size, jump, start), k, s, p, d)
    assert field_step(Field(size, jump, start), k, s, p, d) == astuple(expected)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_replaced_equals_namedtuples_replace(data):
    values = st.one_of(st.none(), st.integers(0, 3), st.tuples(st.integers(0, 3)))
    tag = Tag(*(data.draw(values) for _ in Tag._fields))
    keys = data.draw(st.lists(st.sampled_from(Tag._fields), unique=True, max_size=4))
    changes = {k: data.draw(values) for k in keys}
    new = replaced(tag, **changes)
    assert type(new) is Tag and new == tag._replace(**changes)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_slice_index_keeps_the_axes_and_steps_as_torchs_strides_say(data):
    """x[key] for a key of slices: each spatial axis stays at its position and its step is
    the output's stride over the input's (torch's view of the same slicing)."""
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=4, max_size=4)))
    bounds = st.one_of(st.none(), st.integers(-7, 7))
    key = tuple(
        slice(
            data.draw(bounds), data.draw(bounds), data.draw(st.one_of(st.none(), st.integers(1, 3)))
        )
        for _ in range(data.draw(st.integers(1, 4)))
    )
    x = torch.empty(shape)
    out = x[key]
    assume(min(out.shape) > 0)
    axes, steps = axes_index(key, shape, (2, 3))
    assert axes == (2, 3)
    for a, step in zip(axes, steps, strict=True):
        if out.shape[a] > 1:
            assert out.stride(a) == x.stride(a) * step


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_cat_shape_equals_torchs_cat_on_meta(data):
    """torch.cat on meta tensors as the truth: the shape where torch takes them, None where
    it raises (a dim out of range included: it wrapped around to another axis)."""
    n = data.draw(st.integers(1, 3))
    dims = st.lists(st.integers(1, 4), min_size=n, max_size=n)
    tensors = [
        torch.empty(data.draw(dims), device="meta") for _ in range(data.draw(st.integers(1, 3)))
    ]
    dim = data.draw(st.integers(-n - 2, n + 1))  # out of range too: torch's IndexError
    try:
        expected = tuple(torch.cat(tensors, dim).shape)
    except (RuntimeError, IndexError):
        expected = None
    assert cat_shape((tensors, dim), {}) == expected
