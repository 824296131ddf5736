"""Output shapes the summary's trace makes on meta from its inputs' shapes (`reductions.py`,
`shapes.py`) against torch's own outputs on real tensors: the same shape (and strides) where
torch runs the call, left to torch (None) where torch raises."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.shapes import made
from cnnlab.errors import CnnlabError

NORMS = [torch.norm, torch.Tensor.norm, torch.linalg.vector_norm]


@settings(max_examples=200, deadline=None)
@given(
    dims=st.one_of(st.integers(-5, 4), st.lists(st.integers(-5, 4), min_size=1, max_size=3)),
    keep=st.booleans(),
    p=st.sampled_from([2, 1, 0.5, math.inf, "fro", "nuc"]),
    norm=st.sampled_from(NORMS),
)
def test_a_vector_norm_is_made_with_torchs_shape_or_left_to_torch(dims, keep, p, norm):
    """torch's norm of a real tensor as the truth: made with its shape and strides, or left
    to torch (None) where torch raises (a dim out of range or named twice, the nuclear norm
    or 'fro' where they are matrix norms, a string ord for vector_norm)."""
    x = torch.randn(2, 3, 4, 5)
    try:
        want = norm(x, p, dims, keep)
    except (RuntimeError, IndexError, ValueError, TypeError):
        want = None
    out = made(norm, (x.to("meta"), p, dims, keep), {})
    if want is None:
        assert out is None
        return
    assert out is None or (out.shape, out.stride()) == (want.shape, want.stride())
    numeric = type(p) is not str
    dim_list = [dims] if isinstance(dims, int) else dims
    if numeric and len({d % 4 for d in dim_list}) == len(dim_list):
        assert out is not None  # the shortcut serves every numeric p over distinct dims


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(
    "kwargs", [{"dim": (1, 2), "keepdim": True}, {"dim": -1}, {"dim": 1, "dtype": torch.float64}]
)
def test_a_vector_norm_by_keywords_is_made_as_torch_makes_it(norm, kwargs):
    """ConvNeXt V2's GRN: torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True);
    a dtype is left to torch (its output's dtype), as torch.norm's positional `out`."""
    x = torch.randn(1, 7, 7, 8)
    name = "ord" if norm is torch.linalg.vector_norm else "p"
    want = norm(x, **{name: 2}, **kwargs)
    out = made(norm, (x.to("meta"),), {name: 2, **kwargs})
    if "dtype" in kwargs:
        assert out is None
    else:
        assert (out.shape, out.dtype) == (want.shape, want.dtype)


def test_a_norm_of_a_non_contiguous_map_is_left_to_torch():
    """torch picks a reduction's output strides from its input's; only a contiguous input's
    are known here."""
    x = torch.empty(1, 8, 5, 5, device="meta").permute(0, 2, 3, 1)
    assert made(torch.linalg.vector_norm, (x, 2, (1, 2), True), {}) is None


keys = st.tuples(
    st.integers(0, 3),  # whole slices before the index
    st.lists(st.integers(1, 3), min_size=0, max_size=2),  # the index's shape
    st.sampled_from([torch.int64, torch.int32, torch.bool]),
    st.booleans(),  # a tuple key even with no slice before
)


@settings(max_examples=200, deadline=None)
@given(key=keys, permuted=st.booleans())
def test_an_index_by_a_tensor_is_made_with_torchs_shape_or_left_to_torch(key, permuted):
    """x[:, idx] (LeViT's attention biases) made on meta: torch's real output's shape and
    strides where torch runs it; a mask, a 0-d index, a non-contiguous x or an index past
    the dims is left to torch (None)."""
    slices, index_shape, dtype, as_tuple = key
    x = torch.randn(3, 4, 5)
    if permuted:
        x = x.permute(2, 0, 1)
    index = torch.zeros(index_shape, dtype=dtype)

    def key_of(i):
        return (slice(None),) * slices + (i,) if slices or as_tuple else i

    real_key, meta_key = key_of(index), key_of(index.to("meta"))
    try:
        want = x[real_key]
    except (IndexError, RuntimeError):
        want = None
    out = made(torch.Tensor.__getitem__, (x.to("meta"), meta_key), {})
    if want is None or dtype is torch.bool or permuted or not index_shape:
        assert out is None  # (a 0-d index selects: a view of x)
        return
    assert out is not None and (out.shape, out.stride(), out.dtype) == (
        want.shape, want.stride(), want.dtype
    )  # fmt: skip


def test_slices_and_several_indices_are_left_to_torch():
    x = torch.empty(3, 4, 5, device="meta")
    i = torch.zeros(2, dtype=torch.long, device="meta")
    for key in [(slice(0, 2), i), (i, i), (Ellipsis, i), (i, slice(None)), (None, i), 1]:
        assert made(torch.Tensor.__getitem__, (x, key), {}) is None


@pytest.mark.parametrize("output_size", [1, 3, (1,), (2,), 0, (1, 1), None])
@pytest.mark.parametrize("permuted", [False, True])
def test_an_adaptive_1d_pool_is_made_with_torchs_shape_or_left_to_torch(output_size, permuted):
    """FocalNet's pooler, nn.AdaptiveAvgPool1d(1) on (B, L, C) -> transpose: made on meta
    where x is contiguous or tokens transposed (Swin's), with torch's real output's shape
    and strides; a size torch refuses or an empty output (size 0) is left to torch (None)."""
    from torch.nn.functional import adaptive_avg_pool1d

    x = torch.randn(2, 6, 5)
    if permuted:
        x = x.transpose(1, 2)
    try:
        want = adaptive_avg_pool1d(x, output_size)
    except (RuntimeError, TypeError):
        want = None
    out = made(adaptive_avg_pool1d, (x.to("meta"), output_size), {})
    if want is None or output_size == 0:
        assert out is None
        return
    assert out is not None and (out.shape, out.stride()) == (want.shape, want.stride())


class _Tokens(nn.Module):
    """(B, C, H, W) -> tokens (B, HW, C) as a view of the map (non-contiguous) -> Linear
    -> .view(B, -1): runs only where the Linear's output is contiguous, as torch makes it."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return self.linear(x.flatten(2).transpose(1, 2)).view(x.shape[0], -1)


@pytest.mark.parametrize(
    "linear",
    [
        lambda: nn.Linear(4, 6),
        lambda: nn.Linear(4, 6, bias=False),
        lambda: nn.Linear(5, 6),  # inputs that do not fit
        lambda: _with_bias(nn.Linear(4, 6), torch.zeros(5)),  # a bias of 5 for 6 outputs
    ],
)
def test_a_linear_layer_is_made_as_torch_runs_it_or_refused_as_torch_refuses_it(linear):
    """nn.Linear's output made without its forward (`Shortcuts._linear`): the row has torch's
    real output shape where the real forward runs (a view after it included); where torch
    raises, so does the summary, naming the layer. (Another dtype: test_summary_refusals.)"""
    model = _Tokens(linear())
    try:
        want = tuple(model(torch.randn(1, 4, 3, 3)).shape[1:])
    except RuntimeError:
        with pytest.raises(CnnlabError, match="linear"):
            summary(model, (4, 3, 3))
        return
    rows = summary(model, (4, 3, 3)).rows
    assert (rows[0].name, rows[0].output_shape) == ("linear", (9, 6))
    assert rows[-1].output_shape == want


def _with_bias(layer: nn.Linear, bias: torch.Tensor) -> nn.Linear:
    layer.bias = nn.Parameter(bias)
    return layer


def _regrouped(norm: nn.GroupNorm, groups: int) -> nn.GroupNorm:
    norm.num_groups = groups  # after construction, which checks it
    return norm


def _reshaped(norm: nn.LayerNorm, shape: tuple) -> nn.LayerNorm:
    norm.normalized_shape = shape
    return norm


@pytest.mark.parametrize(
    ("norm", "size"),
    [
        (lambda: nn.LayerNorm(5), (4, 3, 5)),
        (lambda: nn.LayerNorm((3, 5)), (4, 3, 5)),
        (lambda: nn.LayerNorm(5, elementwise_affine=False), (4, 3, 5)),
        (lambda: nn.LayerNorm(4), (4, 3, 5)),  # not x's last dim
        (lambda: _reshaped(nn.LayerNorm(5), (6,)), (4, 3, 5)),  # weight of 5 for 6
        (lambda: nn.GroupNorm(2, 4), (4, 3, 5)),
        (lambda: nn.GroupNorm(4, 4, affine=False), (4, 3, 5)),
        (lambda: nn.GroupNorm(4, 4), (4, 1, 1)),  # one value a group
        (lambda: _regrouped(nn.GroupNorm(2, 4), 3), (4, 3, 5)),  # 3 groups of 4 channels
        (lambda: nn.GroupNorm(2, 6), (4, 3, 5)),  # a weight of 6 for 4 channels
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_layer_or_group_norm_module_is_made_or_refused_as_torch_runs_it(norm, size, dtype):
    """nn.LayerNorm and nn.GroupNorm made without their forward (`Shortcuts._norm`): the
    row has torch's real output shape where torch runs the norm; where torch raises, the
    summary raises, naming the layer; a bfloat16 input with float32 parameters (torch's CPU
    kernels take them) is left to the forward and judged so."""
    from test_summary_refusals import agrees

    model = nn.Sequential(nn.Conv2d(4, 4, 1).to(dtype), norm())
    agrees(model, size)


SOFTMAXES = [torch.softmax, torch.Tensor.softmax, torch.log_softmax, torch.Tensor.log_softmax]


@settings(max_examples=150, deadline=None)
@given(
    dim=st.integers(-5, 4),
    layout=st.sampled_from(["contiguous", "permuted", "strided"]),
    func=st.sampled_from(SOFTMAXES),
)
def test_a_softmax_is_made_with_torchs_shape_and_strides(dim, layout, func):
    """softmax / log_softmax of a map made on meta: torch's real output's shape and strides
    (contiguous, whatever the input's); a dim out of range is left to torch (None)."""
    x = torch.randn(2, 3, 4, 6)
    x = {"contiguous": x, "permuted": x.permute(0, 2, 1, 3), "strided": x[..., ::2]}[layout]
    try:
        want = func(x, dim)
    except IndexError:
        want = None
    out = made(func, (x.to("meta"), dim), {})
    if want is None:
        assert out is None
    else:
        assert out is not None and (out.shape, out.stride()) == (want.shape, want.stride())


def test_f_softmax_by_keywords_is_made_and_a_dtype_left_to_torch():
    """F.softmax hands dim, _stacklevel and dtype to the mode by keyword."""
    from torch.nn.functional import softmax

    x = torch.empty(2, 5, device="meta")
    assert made(softmax, (x,), {"dim": 1, "_stacklevel": 3, "dtype": None}).shape == (2, 5)
    assert made(softmax, (x,), {"dim": 1, "_stacklevel": 3, "dtype": torch.float64}) is None
    assert made(softmax, (x,), {"dim": None, "_stacklevel": 3, "dtype": None}) is None


class _Biased(nn.Module):
    """LeViT's attention biases: a table of biases per channel, picked by an index buffer."""

    def __init__(self, top: int, channels: int = 4) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3, channels))
        self.register_buffer("idx", torch.tensor([[0, top], [1, 2]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :1, None] + self.bias[:, self.idx].sum()


@pytest.mark.parametrize("top", [3, -4, 4, 7, -5])
def test_an_index_buffer_out_of_range_is_refused_as_torch_refuses_it(top):
    """x[:, idx] with a model's index buffer: torch raises IndexError on a value out of the
    dim's range (4 channels: 4, 7, -5), which a meta kernel cannot see; the summary checks
    the buffer's range and refuses where torch does."""
    model = _Biased(top)
    try:
        want = tuple(model(torch.randn(1, 2, 3, 3)).shape[1:])
    except IndexError:
        want = None
    if want is not None:
        assert summary(model, (2, 3, 3)).rows[-1].output_shape == want
        return
    with pytest.raises(CnnlabError, match=f"IndexError: index {top} is out of bounds"):
        summary(model, (2, 3, 3))
