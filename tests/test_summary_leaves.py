"""summary makes the output of torch's own conv, linear and pooling modules from their
attributes, without running their forward (`design/summary/leaves.py`): each such row must
equal the shape torch's real forward gives, over random kernels, strides, paddings,
dilations, groups and ceil_mode, and where torch refuses an input summary must refuse it too.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError


def real_or_error(module: nn.Module, size: tuple[int, int, int]) -> tuple[int, ...] | None:
    """torch's own output shape (one image) on CPU, None where torch raises."""
    try:
        with torch.no_grad():
            out = module.eval()(torch.zeros(1, *size))
    except (RuntimeError, ValueError):
        return None
    out = out[0] if isinstance(out, tuple) else out
    return tuple(out.shape[1:])


def agrees(module: nn.Module, size: tuple[int, int, int]) -> None:
    expected = real_or_error(module, size)
    if expected is None:
        with pytest.raises(CnnlabError):
            summary(module, size)
        return
    rows = summary(module, size).rows
    assert [r.output_shape for r in rows] == [expected]


pads = st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"]))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's, on even kernels
@settings(max_examples=60, deadline=None)
@given(
    c=st.sampled_from([1, 2, 4]),
    groups=st.sampled_from([1, 2]),
    k=st.integers(1, 5),
    stride=st.integers(1, 3),
    pad=pads,
    dilation=st.integers(1, 3),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    bias=st.booleans(),
)
def test_conv2d_rows_equal_torchs_forward(c, groups, k, stride, pad, dilation, h, w, bias):
    if pad == "same":
        stride = 1  # torch allows 'same' only at stride 1
    conv = nn.Conv2d(c * groups, 2 * groups, k, stride, pad, dilation, groups, bias)
    agrees(conv, (c * groups, h, w))


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 5),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    pad=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
)
def test_max_pool2d_rows_equal_torchs_forward(k, stride, pad, dilation, ceil, h, w):
    if 2 * pad > k:
        pad = k // 2  # torch: padding at most half the kernel
    agrees(nn.MaxPool2d(k, stride, pad, dilation, ceil_mode=ceil), (3, h, w))


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 5),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    pad=st.integers(0, 2),
    ceil=st.booleans(),
    include=st.booleans(),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
)
def test_avg_pool2d_rows_equal_torchs_forward(k, stride, pad, ceil, include, h, w):
    if 2 * pad > k:
        pad = k // 2
    agrees(nn.AvgPool2d(k, stride, pad, ceil, include), (3, h, w))


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from([nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d]),
    out=st.one_of(
        st.integers(0, 6),
        st.tuples(st.one_of(st.none(), st.integers(0, 6)), st.one_of(st.none(), st.integers(0, 6))),
    ),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
)
def test_adaptive_pool2d_rows_equal_torchs_forward(kind, out, h, w):
    """Output sizes of 0 included: torch makes an empty map (the summary divided by 0)."""
    agrees(kind(out), (3, h, w))


def test_an_adaptive_pool_to_an_empty_map_gets_torchs_shape_and_what_follows_its_errors():
    """torch runs AdaptiveAvgPool2d((0, 3)) (a 0×3 map, what follows sees no pixel): so does
    the summary, where it raised ZeroDivisionError; a conv after it is refused as torch
    refuses it, naming the layer and the empty map."""
    pool = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.AdaptiveAvgPool2d((0, 3)), nn.ReLU())
    rows = summary(pool, (2, 8, 8)).rows
    assert [r.output_shape for r in rows] == [(2, 8, 8), (2, 0, 3), (2, 0, 3)]
    assert [r.output_shape for r in rows][1:] == [real_or_error(pool[:2], (2, 8, 8))] * 2
    conv = nn.Sequential(*pool, nn.Conv2d(2, 2, 1))
    assert real_or_error(conv, (2, 8, 8)) is None
    with pytest.raises(CnnlabError, match=r"layer 3 \(Conv2d\) on a 1×2×0×3 input"):
        summary(conv, (2, 8, 8))


@settings(max_examples=30, deadline=None)
@given(features=st.integers(1, 9), out=st.integers(1, 5), bias=st.booleans(), w=st.integers(1, 9))
def test_linear_rows_equal_torchs_forward(features, out, bias, w):
    agrees(nn.Linear(features, out, bias), (2, 3, w))  # on the last axis of a map


class Doubled(nn.Conv2d):
    """A conv whose own forward changes the output: it must run, not be made from its
    attributes."""

    def forward(self, x):
        y = super().forward(x)
        return torch.cat([y, y], dim=1)


def test_a_conv_subclass_with_its_own_forward_runs_it():
    rows = summary(Doubled(3, 4, 3), (3, 8, 8)).rows
    assert [r.output_shape for r in rows] == [(8, 6, 6)]


def test_a_circular_padding_conv_runs_its_forward():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    agrees(conv, (3, 8, 8))


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["max", "avg"]),
    k=st.integers(1, 6),
    stride=st.one_of(st.none(), st.integers(1, 4)),
    pad=st.integers(0, 3),
    dilation=st.integers(1, 3),
    ceil=st.booleans(),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
)
def test_pools_torch_refuses_are_refused(kind, k, stride, pad, dilation, ceil, h, w):
    """Any padding (torch refuses more than half the kernel) and windows wider than the
    padded map (with ceil_mode torch runs some): summary's rows or refusals are torch's."""
    if kind == "max":
        pool = nn.MaxPool2d(k, stride, pad, dilation, ceil_mode=ceil)
    else:
        pool = nn.AvgPool2d(k, stride, pad, ceil_mode=ceil)
    agrees(pool, (2, h, w))
