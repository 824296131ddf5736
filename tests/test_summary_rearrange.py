"""Shapes the summary's trace makes on meta for F.unfold, F.fold, Tensor.repeat,
.contiguous() and a reshape or flatten that copies (`rearrange.py`) against torch's own
outputs on real tensors: the same shape and strides where torch runs the call, left to torch
(None) where torch raises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.rearrange import blocks, view_strides
from cnnlab.design.summary.shapes import made

pairs = st.one_of(st.integers(-1, 4), st.tuples(st.integers(-1, 4), st.integers(-1, 4)))


def _same_or_refused(func, x: torch.Tensor, args: tuple, kwargs: dict | None = None):
    """made()'s output against torch's on a real x; returns torch's (None if it raised)."""
    kwargs = kwargs or {}
    try:
        want = func(x, *args, **kwargs)
    except (RuntimeError, ValueError, TypeError, IndexError):
        want = None
    out = made(func, (x.to("meta"), *args), kwargs)
    if want is None:
        assert out is None
    elif out is not None:
        assert (out.shape, out.stride(), out.dtype) == (want.shape, want.stride(), want.dtype)
    return want, out


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from([(2, 3, 7, 6), (3, 5, 5), (1, 2, 1, 9), (2, 3, 4)]),
    kernel=pairs,
    dilation=pairs,
    padding=st.one_of(st.integers(-1, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))),
    stride=pairs,
)
def test_unfold_is_made_with_torchs_shape_or_left_to_torch(shape, kernel, dilation, padding, stride):  # fmt: skip  # noqa: E501
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    want, out = _same_or_refused(F.unfold, torch.randn(shape), (kernel,), kwargs)
    if want is not None and len(shape) in (3, 4):
        assert out is not None  # every unfold torch runs is made


@settings(max_examples=300, deadline=None)
@given(
    batch=st.sampled_from([(), (2,)]),
    channels=st.integers(1, 3),
    output=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    kernel=pairs,
    dilation=pairs,
    padding=st.integers(0, 2),
    stride=pairs,
    extra=st.sampled_from([0, 0, 0, 1, -1]),
)
def test_fold_is_made_with_torchs_shape_or_left_to_torch(
    batch, channels, output, kernel, dilation, padding, stride, extra
):
    """The block count L from the same formula, off by `extra` in some draws: torch refuses."""
    k = (kernel, kernel) if type(kernel) is int else kernel
    d = (dilation, dilation) if type(dilation) is int else dilation
    s = (stride, stride) if type(stride) is int else stride
    n = blocks(output, k, d, (padding, padding), s) if min(*k, *d, *s) > 0 else None
    blocks_ = (1 if n is None else n[0] * n[1]) + extra
    x = torch.randn(*batch, channels * max(k[0], 1) * max(k[1], 1), max(blocks_, 0))
    kwargs = dict(dilation=dilation, padding=padding, stride=stride)
    want, out = _same_or_refused(F.fold, x, (output, kernel), kwargs)
    if want is not None:
        assert out is not None


@settings(max_examples=200, deadline=None)
@given(
    shape=st.sampled_from([(2, 3), (4,), (1, 2, 3), ()]),
    sizes=st.lists(st.integers(-1, 3), min_size=0, max_size=4),
    packed=st.booleans(),
)
def test_repeat_is_made_with_torchs_shape_or_left_to_torch(shape, sizes, packed):
    x = torch.randn(shape)
    args = (tuple(sizes),) if packed else tuple(sizes)
    want, out = _same_or_refused(torch.Tensor.repeat, x, args)
    if want is not None and sizes:
        assert out is not None


@pytest.mark.parametrize("fmt", [None, torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("order", [(0, 1, 2, 3), (0, 2, 3, 1), (0, 3, 1, 2)])
def test_contiguous_is_made_as_torch_makes_it(fmt, order):
    """A copy in the asked layout, or the tensor itself where it is already so (as torch)."""
    x = torch.randn(2, 3, 4, 5).permute(order)
    kwargs = {} if fmt is None else {"memory_format": fmt}
    want, out = _same_or_refused(torch.Tensor.contiguous, x, (), kwargs)
    assert out is not None
    meta = x.to("meta")
    same = made(torch.Tensor.contiguous, (meta,), kwargs) is meta
    assert same == (want.data_ptr() == x.data_ptr())


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from([(2, 4, 5, 3), (4, 3, 6), (1, 4, 1, 1)]),
    out_per_group=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 4, 3]),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=pairs,
    padding=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 3), st.integers(0, 1))),
    extra=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 1), st.integers(0, 2))),
    dilation=pairs,
    bias=st.booleans(),
    layout=st.sampled_from(["contiguous", "contiguous", "channels_last"]),
)
def test_conv_transpose2d_is_made_with_torchs_shape_or_left_to_torch(
    shape, out_per_group, groups, kernel, stride, padding, extra, dilation, bias, layout
):
    """nn.ConvTranspose2d's call, torch's output on real tensors as the truth: shape and
    strides (channels-last where the input's or the weight's strides suggest it)."""
    x = torch.randn(shape)
    if layout == "channels_last" and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(4, out_per_group, *kernel)
    b = torch.randn(out_per_group * groups) if bias else None
    args = (w, b, stride, padding, extra, groups, dilation)
    try:
        want = F.conv_transpose2d(x, *args)
    except (RuntimeError, ValueError):
        want = None
    meta = (a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    out = made(F.conv_transpose2d, (x.to("meta"), *meta), {})
    if want is None:
        assert out is None
        return
    positive = min(_ints(stride) + _ints(dilation)) > 0  # torch runs a dilation of 0 too
    if x.dim() == 4 and positive and want.numel():  # (an empty output: torch makes it)
        assert out is not None
    if out is not None:
        assert (out.shape, _laid(out)) == (want.shape, _laid(want))


def _laid(t: torch.Tensor) -> list[int]:
    """t's strides on its axes longer than 1: an axis of size 1 is never stepped along, so
    its stride says nothing of the layout (torch's contiguity checks and views skip it), and
    torch's kernels leave it path-dependent: a grouped transposed conv to a 1×1 map of a
    channels-last input gives (C, 1, 1, 1) for one output channel per group, (C, 1, C, C)
    for more."""
    return [stride for stride, size in zip(t.stride(), t.shape, strict=True) if size != 1]


def _ints(value) -> tuple:
    return (value,) if type(value) is int else tuple(value)


@pytest.mark.parametrize(
    "shape, args, kwargs",
    [
        ((2, 3, 4, 5), (torch.channels_last,), {}),  # positional: torch refuses it
        ((2, 3, 4), (), {"memory_format": torch.channels_last}),  # 3-d: no such layout
        ((2, 3, 4, 5), (), {"memory_format": torch.channels_last_3d}),
        ((2, 3, 4, 5), (), {"memory_format": torch.preserve_format}),
    ],
)
def test_a_contiguous_call_the_rule_cannot_make_is_left_to_torch(shape, args, kwargs):
    """torch raises (or, for preserve_format, decides by strides): made() leaves it."""
    x = torch.randn(shape)
    assert made(torch.Tensor.contiguous, (x.to("meta"), *args), kwargs) is None
    if kwargs.get("memory_format") is not torch.preserve_format:
        with pytest.raises((TypeError, RuntimeError)):
            x.contiguous(*args, **kwargs)


def new_shape(x: torch.Tensor, parts: list[int]) -> tuple[int, ...]:
    """A shape of x's number of values: each drawn part taken where it divides what is left."""
    numel, shape = x.numel(), []
    for p in parts:
        if numel % p == 0:
            shape.append(p)
            numel //= p
    return (*shape, numel)


@settings(max_examples=400, deadline=None)
@given(
    shape=st.sampled_from([(2, 3, 4), (4, 1, 6), (2, 3, 2, 5), (3, 4), (1, 5, 1, 2)]),
    order=st.permutations(range(4)),
    step=st.booleans(),
    parts=st.lists(st.integers(1, 6), max_size=3),
    infer=st.integers(-1, 3),
    call=st.sampled_from(["reshape", "reshape ints", "torch.reshape", "reshape_as"]),
)
def test_a_reshape_of_a_strided_map_is_made_as_torch_makes_it(
    shape, order, step, parts, infer, call
):
    """A permuted (and maybe strided) map reshaped: torch's shape and strides where it runs;
    where no view of it has the new shape (torch copies it, through a meta kernel in
    Python) the rule makes it; a view that fits and what torch refuses are left to torch."""
    order = [d for d in order if d < len(shape)]
    x = torch.randn(shape).permute(order)
    meta = torch.empty(shape, device="meta").permute(order)
    if step:
        x, meta = x[..., ::2], meta[..., ::2]
    new = list(new_shape(x, parts))
    if 0 <= infer < len(new):
        new[infer] = -1
    funcs = {"reshape_as": torch.Tensor.reshape_as, "torch.reshape": torch.reshape}
    args = {"reshape ints": tuple(new), "reshape_as": (torch.empty(new_shape(x, parts)),)}
    _check_reshape(funcs.get(call, torch.Tensor.reshape), x, meta, args.get(call, (tuple(new),)))


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from([(2, 3, 4), (4, 1, 6, 2), (2, 3, 2, 5), (3, 4)]),
    order=st.permutations(range(4)),
    dims=st.lists(st.integers(-4, 3), max_size=2),
    func=st.sampled_from([torch.Tensor.flatten, torch.flatten]),
)
def test_a_flatten_of_a_strided_map_is_made_as_torch_makes_it(shape, order, dims, func):
    order = [d for d in order if d < len(shape)]
    x, meta = torch.randn(shape).permute(order), torch.empty(shape, device="meta").permute(order)
    _check_reshape(func, x, meta, tuple(dims))


def _check_reshape(func, x: torch.Tensor, meta: torch.Tensor, args: tuple) -> None:
    try:
        want = func(x, *args)
    except (RuntimeError, ValueError, TypeError, IndexError):
        want = None
    margs = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    out = made(func, (meta, *margs), {})
    if want is None:
        assert out is None
        return
    copies = not x.is_contiguous() and not _viewable(x, want.shape)  # torch's copy: made
    assert (out is not None) == copies
    if out is not None:
        assert (out.shape, out.stride(), out.dtype) == (want.shape, want.stride(), want.dtype)


def _viewable(x: torch.Tensor, shape) -> bool:
    try:
        x.view(shape)
    except RuntimeError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from([(2, 3, 4), (4, 1, 6), (2, 3, 2, 5), (1, 5, 1, 2)]),
    order=st.permutations(range(4)),
    step=st.booleans(),
    parts=st.lists(st.integers(1, 6), max_size=3),
)
def test_view_strides_are_torchs(shape, order, step, parts):
    """ATen's computeStride, as `reshaped` decides by it: a view's strides where torch's
    .view runs, None where it refuses."""
    order = [d for d in order if d < len(shape)]
    x = torch.randn(shape).permute(order)
    x = x[..., ::2] if step else x
    new = new_shape(x, parts)
    try:
        want = x.view(new).stride()
    except RuntimeError:
        want = None
    assert view_strides(tuple(x.shape), x.stride(), new) == want


class Unfolded(nn.Module):
    """MobileViT's patch round trip: unfold into patches, mix them, fold them back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Linear(8 * 4, 8 * 4)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        p = F.unfold(y, 2, stride=2).transpose(1, 2)  # (B, L, C·4)
        p = self.mix(p).transpose(1, 2).contiguous()
        y = F.fold(p, y.shape[-2:], 2, stride=2)
        return self.out(y.repeat(1, 1, 1, 1))


def test_a_patch_round_trip_gets_torchs_shapes_in_every_row():
    model = Unfolded().eval()
    rows = {r.name: r.output_shape for r in summary(model, (3, 16, 12)).rows}
    seen = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape[1:])))
        for n, m in model.named_children()
    ]
    model(torch.randn(1, 3, 16, 12))
    for h in hooks:
        h.remove()
    assert rows == seen
