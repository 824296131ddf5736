"""The speed tricks of cnnlab.summary change nothing: meta outputs made from known shapes
give torch's shapes and errors and torchinfo's totals; the garbage collector is left as found."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import geometry
from cnnlab.design.summary import summary
from cnnlab.design.summary.axes import index as axes_index
from cnnlab.design.summary.calls import field_step
from cnnlab.design.summary.facts import Field
from cnnlab.design.summary.shapes import _cat_shape as cat_shape
from cnnlab.design.summary.shapes import broadcast, layout, made
from cnnlab.design.summary.tags import Tag, replaced
from cnnlab.errors import CnnlabError
from test_summary import leaf_rows, real_leaf_shapes

# --- the speed tricks change nothing: torch's shapes and errors, torchinfo's totals, the GC --


class Shortcuts(nn.Module):
    """Layers whose meta output summary makes without running torch's kernel, in their less
    common forms: a linear map on the last axis of a map, adaptive pooling to (3, None) and
    to a size that does not divide the input, activations, batch norm on a 1×1 map, a shared
    module, and element-wise `+` and `*`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Linear(12, 12, bias=False)  # along the width
        self.rows = nn.AdaptiveAvgPool2d((3, None))
        self.odd = nn.AdaptiveAvgPool2d(5)  # 12 -> 5
        self.acts = nn.Sequential(nn.LeakyReLU(0.1), nn.GELU(), nn.SiLU(), nn.Dropout(0.2))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(8)
        self.gate = nn.Sigmoid()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x)  # (B, 8, 12, 12)
        x = x + self.mix(x)  # (B, 8, 12, 12)
        y = self.rows(x)  # (B, 8, 3, 12)
        z = self.acts(self.odd(x))  # (B, 8, 5, 5)
        g = self.gate(self.bn(self.gap(z)))  # (B, 8, 1, 1)
        return self.fc(torch.flatten(g * self.gap(y), 1))  # (B, 4)


def test_meta_shortcuts_give_torchs_shapes_and_torchinfos_totals():
    model = Shortcuts()
    s = summary(model, (3, 12, 12))
    assert leaf_rows(s, model) == real_leaf_shapes(model, (3, 12, 12))
    info = torchinfo.summary(model, input_size=(1, 3, 12, 12), verbose=0)
    assert s.total_params == info.total_params
    # torchinfo counts a linear map applied along a (8, 12, 12) map's last axis once (144),
    # summary at each of its 8·12 positions
    assert s.total_macs == info.total_mult_adds - 144 + 144 * 8 * 12


def _gn(x, groups=4, channels=8):
    return F.group_norm, (x(1, 8, 5, 5), groups, x(channels), x(channels)), {}


def _sdpa(x, q=(1, 2, 6, 4), k=(1, 2, 9, 4), v=(1, 2, 9, 5), **kwargs):
    return F.scaled_dot_product_attention, (x(*q), x(*k), x(*v)), kwargs


@pytest.mark.parametrize(
    ("call", "shortcut"),
    [
        (_gn, True), (lambda x: _gn(x, groups=3), False), (lambda x: _gn(x, channels=4), False),
        (_sdpa, True), (lambda x: _sdpa(x, k=(1, 2, 9, 3)), False),
        (lambda x: _sdpa(x, v=(1, 2, 7, 5)), False),
        (lambda x: _sdpa(x, q=(2, 6, 4), k=(2, 9, 4), v=(2, 9, 5), is_causal=True), True),
        (lambda x: _sdpa(x, attn_mask=x(6, 9)), False), (lambda x: _sdpa(x, k=(1, 1, 9, 4)), False),
        (lambda x: (F.instance_norm, (x(1, 4, 5, 5), None, None, x(4), x(4)), {}), True),
        (lambda x: (F.instance_norm, (x(1, 4, 5, 5), None, None, x(3)), {}), False),
        (lambda x: (F.instance_norm, (x(1, 4, 5, 5),), {"use_input_stats": False}), False),
        (lambda x: (F.normalize, (x(1, 4, 5, 5),), {"dim": 1}), True),
        (lambda x: (F.normalize, (x(1, 4, 5, 5), 2.0, 4), {}), False),
        (lambda x: (torch.prelu, (x(1, 4, 5, 5), x(4)), {}), True),
        (lambda x: (torch.prelu, (x(1, 4, 5, 5), x(3)), {}), False),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7),), {"scale_factor": 2}), True),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7), None, 1.5, "bicubic"), {}), True),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7),), {"size": (6, 9), "mode": "bilinear"}), True),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7), 3, None, "nearest", True), {}), False),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7),), {"size": 3, "scale_factor": 2}), False),
        (lambda x: (F.interpolate, (x(1, 4, 5, 7),), {"size": 3, "mode": "area"}), False),
        (lambda x: (torch.matmul, (x(2, 1, 3, 4), x(5, 4, 6)), {}), True),
        (lambda x: (torch.Tensor.__matmul__, (x(2, 3, 4), x(4, 5)), {}), True),
        (lambda x: (torch.matmul, (x(2, 3, 4), x(5, 6)), {}), False),
        (lambda x: (torch.matmul, (x(2, 3, 4), x(3, 4, 6)), {}), False),
        (lambda x: (torch.matmul, (x(3, 4), x(4)), {}), False),
        (lambda x: (F.group_norm, (x(1, 8, 1, 1), 8), {}), False),  # one value a group
        (lambda x: (F.group_norm, (x(2, 8, 1, 1), 8), {}), True),
        (lambda x: (F.instance_norm, (x(1, 4, 1, 1),), {}), False),  # one position
        (lambda x: (torch.prelu, (x(1, 4, 5, 5), x(4, 1, 1)), {}), False),  # a 3-D weight
    ],
)  # fmt: skip
def test_slow_meta_kernels_are_made_with_torchs_shape_or_left_to_torch(call, shortcut):
    """F.group_norm (BiT, PoolFormer), F.scaled_dot_product_attention (SegFormer),
    F.instance_norm, torch.prelu, F.interpolate (MONAI's U-Nets), F.normalize (SwiftFormer)
    and matmul (LeViT) made on meta: torch's shape where torch runs them on real data; where it
    raises (groups that do not divide, features or positions that differ, a weight of
    another size, align_corners with nearest) or the shape needs torch (a mask, heads
    broadcast, area), left to torch."""
    func, args, kwargs = call(lambda *shape: torch.empty(shape, device="meta"))
    out = made(func, args, kwargs)
    assert (out is not None) == shortcut
    real_func, real_args, real_kwargs = call(lambda *shape: torch.randn(shape))
    try:
        real = real_func(*real_args, **real_kwargs)
    except (RuntimeError, ValueError, IndexError):
        assert out is None
        return
    assert out is None or out.shape == real.shape


def test_a_linear_layer_that_does_not_fit_still_gets_torchs_error_with_its_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))  # 4·6·6 in
    with pytest.raises(CnnlabError, match=r"layer 2 \(Linear\).*144"):
        summary(model, (3, 8, 8))


GC_CHECK = """
import gc
from cnnlab import summary
from test_summary import ResNet

model = ResNet()
assert gc.isenabled()
summary(model, (3, 32, 32))
assert gc.isenabled()
gc.disable()
gc.collect()
summary(model, (3, 32, 32))
assert not gc.isenabled()
print(gc.collect())  # unreachable objects the call left behind
"""


def test_the_garbage_collector_is_left_as_found_and_given_nothing_to_do():
    """summary pauses Python's cyclic garbage collector while it runs and leaves no
    reference cycles: the traced copy is freed by reference counting when it returns.
    In a fresh interpreter, so that what other tests left behind is not counted."""
    here = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", GC_CHECK], capture_output=True, text=True, cwd=here)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0"]


class Mutating(nn.Module):
    """A forward that writes its own tensors in place: on the copy the trace runs, these
    writes reach meta twins, never the user's tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("seen", torch.zeros(4))
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x):
        self.seen.add_(1)
        self.scale.data.mul_(0)
        self.conv.weight.data.zero_()
        return self.conv(x) * self.scale


def test_a_forward_that_writes_its_own_tensors_leaves_the_users_untouched():
    model = Mutating()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = summary(model, (3, 8, 8))
    assert [r.output_shape for r in s.rows] == [(4, 6, 6)] * 2  # the conv, the product
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not t.is_meta for t in model.state_dict().values())


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


class _CallsItsList(nn.Module):
    """Calls its ModuleList as if it were a Sequential (torch: NotImplementedError)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.blocks = nn.ModuleList([nn.ReLU()])

    def forward(self, x):
        return self.blocks(self.stem(x))


class _GivesTwo(nn.Module):
    """Gives its Sequential two inputs (torch: TypeError)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.body = nn.Sequential(nn.ReLU())

    def forward(self, x):
        return self.body(self.stem(x), x)


@pytest.mark.parametrize(
    ("model", "where"),
    [(_CallsItsList, r"layer blocks \(ModuleList\)"), (_GivesTwo, r"layer body \(Sequential\)")],
)
def test_a_plain_container_that_cannot_be_called_so_is_named_with_its_input(model, where):
    """A container called straight (past nn.Module.__call__) is still the layer an error of
    its own call names, with the shape it got: torch's own error is the truth of the raise."""
    with pytest.raises((NotImplementedError, TypeError)):
        model()(torch.zeros(1, 1, 16, 16))
    with pytest.raises(CnnlabError, match=where + r" on a 1×4×14×14 input"):
        summary(model(), (1, 16, 16))


@settings(max_examples=150, deadline=None)
@given(
    dims=st.one_of(st.integers(-6, 5), st.lists(st.integers(-6, 5), min_size=1, max_size=3)),
    keep=st.booleans(),
    reduce=st.sampled_from([torch.mean, torch.sum, torch.amax, torch.Tensor.mean]),
)
def test_a_reduction_is_made_with_torchs_shape_or_left_to_torch_where_it_raises(dims, keep, reduce):
    """torch's reduction on meta as the truth: a dim out of range or named twice raises in
    torch, so the shortcut must leave the call to it (it wrapped around or merged them)."""
    x = torch.empty(2, 3, 4, 5, device="meta")
    try:
        expected = tuple(reduce(x, dims, keep).shape)
    except (RuntimeError, IndexError):
        expected = None
    out = made(reduce, (x, dims, keep), {})
    assert out is None or tuple(out.shape) == expected


class _FunctionalConv(nn.Module):
    def __init__(self, stride, padding):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 1, 3, 3))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return torch.nn.functional.conv2d(x, self.weight, None, self.stride, self.padding)


@pytest.mark.parametrize(("stride", "padding"), [(2, "same"), ((1, 2), "same"), (1, "full")])
def test_a_conv_padding_torch_refuses_is_refused_not_given_a_shape(stride, padding):
    """F.conv2d refuses padding="same" with a stride and a padding word it does not know;
    the summary made a shape for both ((4, 8, 8), (4, 14, 14)) where torch raises."""
    model = nn.Sequential(_FunctionalConv(stride, padding))
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(CnnlabError, match=r"layer 0 \(_FunctionalConv\).*RuntimeError"):
        summary(model, (1, 16, 16))


class _Sorts(nn.Module):
    def __init__(self, method: bool):
        super().__init__()
        self.conv, self.head, self.method = nn.Conv2d(1, 4, 3), nn.Linear(4 * 14 * 14, 2), method

    def forward(self, x):
        y = self.conv(x)
        y = y.sort(dim=-1).values if self.method else torch.sort(y, dim=-1).values
        return self.head(y.flatten(1))


@pytest.mark.parametrize(("method", "written"), [(False, "torch.sort"), (True, "Tensor.sort")])
def test_the_unfollowed_lint_names_the_call_as_the_code_writes_it(method, written):
    """torch binds sort to classes the model's code never names (its __qualname__ is
    _VariableFunctionsClass.sort or TensorBase.sort): the lint says torch.sort, Tensor.sort."""
    (lint,) = [w for w in summary(_Sorts(method), (1, 16, 16)).warnings if w.code == "unfollowed"]
    assert lint.message.startswith(
        f"the trace cannot follow the receptive field through {written}:"
    )
    assert "(head)" in lint.message


class OnItsDevice(nn.Module):
    """Tensors made on a parameter's device inside forward, as position embeddings and
    index buffers are written (`torch.arange(n, device=self.pos.device)`)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pos = nn.Parameter(torch.zeros(1, 8, 6, 6))

    def forward(self, x):
        x = self.conv(x) + self.pos
        x = x[:, torch.arange(8, device=self.pos.device).flip(0)]
        extra = torch.zeros(len(x), 1, 6, 6, device=self.pos.device, dtype=self.pos.dtype)
        return torch.cat([x, extra], 1).mean((2, 3))


def test_tensors_made_on_a_parameters_device_are_traced_on_meta():
    """The model moved to meta runs on a meta input (torch: the truth), so the meta trace
    needs no real forward; a property read on the user's CPU parameter (`.device`) made
    tensors on the CPU that met meta ones, and a real forward took over."""
    import copy

    from cnnlab.design.summary import _trace_module

    model = OnItsDevice()
    on_meta = copy.deepcopy(model).to("meta")
    assert on_meta(torch.empty(1, 3, 6, 6, device="meta")).shape == (1, 9)
    assert _trace_module(model, (3, 6, 6)).real_forward is None
    assert (
        summary(model, (3, 6, 6)).rows[-1].output_shape == model(torch.zeros(1, 3, 6, 6)).shape[1:]
    )


class Tokens(nn.Module):
    """BatchNorm1d on (B, C) and on (B, C, L) as token nets use it (LeViT's MLPs), and a
    BatchNorm3d on a 5-D map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.tokens = nn.BatchNorm1d(8)  # on (B, 8, L)
        self.volume = nn.BatchNorm3d(8)
        self.fc = nn.Linear(8, 6)
        self.features = nn.BatchNorm1d(6)  # on (B, 6)

    def forward(self, x):
        x = self.conv(x)
        t = self.tokens(x.flatten(2))  # (B, 8, L)
        v = self.volume(x.unsqueeze(2))  # (B, 8, 1, H, W)
        return self.features(self.fc(t.mean(2) + v.mean((2, 3, 4))))


def test_batch_norm_1d_and_3d_are_made_with_torchs_shapes():
    """The BatchNorm shortcut takes BatchNorm1d and 3d on the dims torch takes for each."""
    model = Tokens()
    s = summary(model, (3, 9, 9))
    assert leaf_rows(s, model) == real_leaf_shapes(model, (3, 9, 9))


@pytest.mark.parametrize(
    ("norm", "words"),
    [
        (nn.BatchNorm1d(4, track_running_stats=False), "more than 1 value per channel"),
        (nn.BatchNorm2d(4), "expected 4D input"),
        (nn.BatchNorm2d(4, track_running_stats=False), "more than 1 value per channel"),
    ],
)
def test_a_batch_norm_torch_refuses_is_named_not_given_a_row(norm, words):
    """Batch statistics of one value per channel (no running statistics, one vector or a 1×1
    map at batch 1) and a BatchNorm2d given a 2-D input: torch raises, so summary names the
    layer with torch's words rather than describe a model that cannot run."""
    flat = isinstance(norm, nn.BatchNorm1d) or norm.track_running_stats
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten() if flat else nn.Identity(), norm
    )
    with pytest.raises(ValueError, match=words):
        model.eval()(torch.zeros(1, 1, 8, 8))
    name = type(norm).__name__
    with pytest.raises(CnnlabError, match=rf"layer 3 \({name}\).*{words}"):
        summary(model, (1, 8, 8))


def _layouts(x):
    """x (1, 4, 5, 7) contiguous, channels-last, permuted from (1, 5, 7, 4) (PVT's position
    embedding), and sliced (neither)."""
    return {
        "contiguous": x,
        "channels-last": x.contiguous(memory_format=torch.channels_last),
        "permuted": x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
        "sliced": torch.cat([x, x], 3)[..., ::2],
    }


@pytest.mark.parametrize("layout", ["contiguous", "channels-last", "permuted", "sliced"])
def test_an_upsampled_map_is_made_in_the_layout_torch_gives_it(layout):
    """F.interpolate keeps a channels-last input's layout: a made output of another layout
    would let a later `.view` pass that torch refuses. Truth: torch's strides on real data;
    a layout neither contiguous nor channels-last is left to torch."""
    meta = _layouts(torch.empty(1, 4, 5, 7, device="meta"))[layout]
    out = made(F.interpolate, (meta,), {"scale_factor": 2, "mode": "bilinear"})
    real = F.interpolate(_layouts(torch.randn(1, 4, 5, 7))[layout], scale_factor=2, mode="bilinear")
    if layout == "sliced":
        assert out is None
    else:
        assert out.shape == real.shape and out.stride() == real.stride()


def test_instance_norm_of_a_channels_last_map_is_left_to_torch():
    """Torch's F.instance_norm output is contiguous whatever its input's layout (truth:
    torch on real data); `new_meta` would keep a channels-last one."""
    x = torch.empty(1, 4, 5, 7, device="meta").contiguous(memory_format=torch.channels_last)
    assert made(F.instance_norm, (x,), {}) is None
    real = torch.randn(1, 4, 5, 7).contiguous(memory_format=torch.channels_last)
    assert F.instance_norm(real).is_contiguous()


def test_a_channels_last_upsample_then_view_is_torchs_error():
    """The reviewer's case: channels-last → F.interpolate → .view(B, -1) raises in torch, so
    summary must name it rather than give a table."""

    class Up(nn.Module):
        def forward(self, x):
            y = F.interpolate(x.contiguous(memory_format=torch.channels_last), scale_factor=2)
            return y.view(y.shape[0], -1)

    with pytest.raises(RuntimeError, match="view"):
        Up()(torch.zeros(1, 3, 4, 4))
    with pytest.raises(CnnlabError, match="view"):
        summary(Up(), (3, 4, 4))


class ViewAfter(nn.Module):
    """A conv or a pool, then `.view(B, -1)`: torch refuses it on a channels-last output."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3 if kind == "pool" else 4 * 6 * 6, 2)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "pool":
            y = self.pool(y.contiguous(memory_format=torch.channels_last).relu())
        elif self.kind == "adaptive":
            y = F.adaptive_avg_pool2d(y.contiguous(memory_format=torch.channels_last), 6)
        return self.fc(y.view(y.shape[0], -1))


@pytest.mark.parametrize(
    ("kind", "weights_last"),
    [("conv", False), ("conv", True), ("pool", False), ("adaptive", False)],
)
def test_outputs_are_made_in_torchs_layout_so_a_view_fails_where_torchs_does(kind, weights_last):
    """A conv whose weights are channels-last (model.to(memory_format=torch.channels_last))
    gives a channels-last output, and a pool of a channels-last map keeps it; a `.view` of it
    fails in torch. Summary made contiguous outputs and gave a table; now it names the layer
    with torch's words, and a model torch runs still gets its table. Truth: torch's forward."""
    model = ViewAfter(kind)
    if weights_last:
        model = model.to(memory_format=torch.channels_last)
    try:
        model(torch.zeros(1, 3, 8, 8))
    except RuntimeError as err:
        assert "view" in str(err)
        with pytest.raises(CnnlabError, match="view"):
            summary(model, (3, 8, 8))
        assert kind != "conv" or weights_last  # a plain conv's output views
    else:
        assert kind == "conv" and not weights_last
        assert leaf_rows(summary(model, (3, 8, 8)), model) == real_leaf_shapes(model, (3, 8, 8))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("x_last", [False, True])
@pytest.mark.parametrize("w_last", [False, True])
@pytest.mark.parametrize("c_in", [1, 4])
def test_a_conv_output_layout_is_torchs(k, x_last, w_last, c_in):
    """`shapes.layout` against torch's own conv output strides on the CPU."""
    x, w = torch.randn(1, c_in, 6, 6), torch.randn(5, c_in, k, k)
    x = x.contiguous(memory_format=torch.channels_last) if x_last else x
    w = w.contiguous(memory_format=torch.channels_last) if w_last else w
    real = F.conv2d(x, w)
    made_out = torch.empty(real.shape, memory_format=layout(x, w))
    assert made_out.stride() == real.stride()
