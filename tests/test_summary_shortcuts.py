"""The speed tricks of cnnlab.summary change nothing: meta outputs made from known shapes
give torch's shapes and errors and torchinfo's totals; the garbage collector is left as found."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.summary import _trace_module, summary
from cnnlab.design.summary.shapes import made
from cnnlab.errors import CnnlabError
from test_summary import leaf_rows, real_leaf_shapes
from test_summary_families import leaf_calls

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
        (lambda x: _sdpa(x, attn_mask=x(6, 9)), True), (lambda x: _sdpa(x, k=(1, 1, 9, 4)), False),
        (lambda x: _sdpa(x, attn_mask=x(6, 7)), False),
        (lambda x: _sdpa(x, attn_mask=x(6, 9), is_causal=True), False),
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
        (lambda x: (torch.prelu, (x(1, 4, 5, 10)[..., ::2], x(4)), {}), False),  # not dense
        (lambda x: (torch.clamp, (x(1, 3, 1, 1),), {"max": 4.6}), True),  # Swin V2's scale
        (lambda x: (torch.clamp, (x(1, 3, 1, 1),), {}), False),  # no bound: torch raises
        (lambda x: (torch.Tensor.clamp_min, (x(2, 3), 1e-6), {}), True),
        (lambda x: (torch.Tensor.exp, (x(2, 3),), {}), True),
        (lambda x: (torch.Tensor.exp, (x(4, 6)[:, ::2],), {}), False),  # not dense: torch's layout
        (lambda x: (torch.log, (x(2, 3),), {"out": x(2, 3)}), False),
        (lambda x: (torch.Tensor.__pow__, (x(2, 3), 2), {}), True),
        (lambda x: (torch.Tensor.pow, (x(2, 3), x(3)), {}), False),  # a tensor exponent
        (lambda x: (torch.Tensor.masked_fill, (x(1, 2, 6, 9), x(6, 9) > 0, -100.0), {}), True),
        (lambda x: (torch.Tensor.masked_fill, (x(6, 9), x(2, 6, 9) > 0, 0.0), {}), False),
        (lambda x: (torch.Tensor.masked_fill, (x(6, 9), x(6, 9), 0.0), {}), False),  # float mask
        (lambda x: (torch.Tensor.masked_fill, (x(6, 9), x(6, 1) > 0, x()), {}), False),
    ],
)  # fmt: skip
def test_slow_meta_kernels_are_made_with_torchs_shape_or_left_to_torch(call, shortcut):
    """F.group_norm (BiT, PoolFormer), F.scaled_dot_product_attention (SegFormer),
    F.instance_norm, torch.prelu, F.interpolate (MONAI's U-Nets), F.normalize (SwiftFormer),
    matmul (LeViT), clamp, exp and masked_fill (Swin V2) made on meta: torch's shape where
    torch runs them on real data; where it raises (groups that do not divide, features or
    positions that differ, a weight of another size, align_corners with nearest, a mask that
    does not broadcast to the scores, no bound) or the shape needs torch (heads broadcast,
    area, a layout that is not dense), left to torch."""
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


class _Sums(nn.Module):
    def __init__(self, method: bool):
        super().__init__()
        self.conv, self.head, self.method = nn.Conv2d(1, 4, 3), nn.Linear(4 * 14 * 14, 2), method

    def forward(self, x):
        y = self.conv(x)
        y = y.renorm(2, 1, 1.0) if self.method else torch.renorm(y, 2, 1, 1.0)
        return self.head(y.flatten(1))


@pytest.mark.parametrize(("method", "written"), [(False, "torch.renorm"), (True, "Tensor.renorm")])
def test_the_unfollowed_lint_names_the_call_as_the_code_writes_it(method, written):
    """torch binds renorm to classes the model's code never names (its __qualname__ is
    _VariableFunctionsClass.renorm or TensorBase.renorm): the lint says torch.renorm,
    Tensor.renorm."""
    (lint,) = [w for w in summary(_Sums(method), (1, 16, 16)).warnings if w.code == "unfollowed"]
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


class _Forwarded(nn.Module):
    """Runs `inner`'s forward through its own: no shortcut knows this type, so the trace
    follows the torch calls inside, as for any user's layer (its row is the layer's)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return type(self.inner).forward(self.inner, x)


def _as_forwarded(model: nn.Sequential, kinds: tuple, size: tuple) -> nn.Sequential:
    """Checks model's summary against torch's shapes and torchinfo's totals, and against the
    same model with its layers of `kinds` run through their forwards (rows' shapes, fields,
    jumps and lints); returns that model."""
    forwarded = nn.Sequential(*(_Forwarded(m) if isinstance(m, kinds) else m for m in model))
    s, slow = summary(model, size), summary(forwarded, size)
    assert leaf_rows(s, model) == real_leaf_shapes(model, size)
    info = torchinfo.summary(model, input_size=(1, *size), verbose=0)
    assert s.total_params == info.total_params == slow.total_params
    assert s.total_macs == info.total_mult_adds + leaf_calls(model, size)[1]
    fields = [(r.output_shape, r.receptive_field, r.jump) for r in s.rows]
    assert fields == [(r.output_shape, r.receptive_field, r.jump) for r in slow.rows]
    assert [(w.code, w.layer) for w in s.warnings] == [(w.code, w.layer) for w in slow.warnings]
    return forwarded


def _monai_block() -> nn.Sequential:
    """MONAI's default conv block (conv, instance norm, PReLU) in its variants."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.InstanceNorm2d(8), nn.PReLU(),
        nn.Conv2d(8, 8, 3, 2, 1), nn.InstanceNorm2d(8, affine=True), nn.PReLU(8),
        nn.Conv2d(8, 8, 3), nn.InstanceNorm2d(8, track_running_stats=True),
        nn.Flatten(2), nn.InstanceNorm1d(8, affine=True),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


def test_instance_norm_and_prelu_are_made_as_their_forwards_make_them():
    """The instance norm and PReLU shortcuts: torch's shapes, torchinfo's totals, and the
    rows, fields and lints of the same layers run through their forwards (in eval mode the
    norm with running statistics is left to its forward; in training mode, as the trace
    asks of a model that ends in a softmax, it is made)."""
    model = _monai_block()
    forwarded = _as_forwarded(model, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.PReLU), (3, 20, 20))
    trained, trained_slow = (
        _trace_module(m, (3, 20, 20), training=True) for m in (model, forwarded)
    )
    rows = [(r.output_shape, r.rf) for r in trained.rows]
    assert rows == [(r.output_shape, r.rf) for r in trained_slow.rows]


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        (nn.InstanceNorm2d(4, affine=True), "to match num_features"),
        (nn.PReLU(3), "Mismatch of parameter numbers and input channel size"),
        (nn.InstanceNorm2d(8), "Expected more than 1 spatial element"),
    ],
)
def test_an_instance_norm_or_prelu_torch_refuses_is_named_with_torchs_words(layer, words):
    """Other channels than the layer's, or a 1×1 map to normalise by its own statistics:
    torch raises, and summary names the layer with torch's words."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.AdaptiveAvgPool2d(1), layer)
    with pytest.raises((ValueError, RuntimeError), match=words):
        model.eval()(torch.zeros(1, 1, 8, 8))
    name = type(layer).__name__
    with pytest.raises(CnnlabError, match=rf"layer 2 \({name}\).*{words}"):
        summary(model, (1, 8, 8))


def test_instance_norm_and_prelu_forwards_do_not_run_where_their_output_is_made(monkeypatch):
    """The shortcut is taken: in eval mode only the norm with running statistics runs."""
    ran = []
    for kind in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.PReLU):
        forward = kind.forward
        monkeypatch.setattr(kind, "forward", lambda m, x, f=forward: ran.append(m) or f(m, x))
    summary(_monai_block(), (3, 20, 20))
    assert [repr(m) for m in ran] == [repr(_monai_block()[7])]  # (the trace runs a copy)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: (torch.exp, (x,), {}), lambda x: (torch.Tensor.sqrt, (x,), {}),
        lambda x: (torch.Tensor.clamp, (x, 0, 1), {}), lambda x: (torch.clamp_max, (x, 2), {}),
        lambda x: (torch.Tensor.__pow__, (x, 2), {}), lambda x: (torch.neg, (x,), {}),
        lambda x: (torch.Tensor.masked_fill, (x, x[0, 0] > 0, 0.0), {}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_an_element_wise_call_of_numbers_is_made_in_torchs_layout(call, layout):
    """Made from x's shape, the output has the shape, dtype and strides torch's kernel gives
    it on real data, for a contiguous and a channels-last map."""
    func, args, kwargs = call(torch.empty(2, 3, 4, 5, device="meta").to(memory_format=layout))
    out = made(func, args, kwargs)
    real_func, real_args, real_kwargs = call(torch.randn(2, 3, 4, 5).to(memory_format=layout))
    want = real_func(*real_args, **real_kwargs)
    assert (out.shape, out.dtype, out.stride()) == (want.shape, want.dtype, want.stride())


def _decoder() -> nn.Sequential:
    """A decoder's layers in their variants: zero and constant padding, transposed convs
    with output padding, groups, dilation and no bias."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ZeroPad2d((0, 1, 0, 1)),
        nn.ConvTranspose2d(8, 8, 3, 2, 1, output_padding=1), nn.ConstantPad2d(2, 1.0),
        nn.ConvTranspose2d(8, 4, 3, 2, groups=2, dilation=2, bias=False), nn.ReLU(),
    )  # fmt: skip


_DECODER_LEAVES = (nn.ConstantPad2d, nn.ConvTranspose2d)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pads_and_transposed_convs_are_made_as_their_forwards_make_them(layout):
    """Their shortcuts: torch's shapes, torchinfo's totals, and the rows, fields and lints of
    the same layers run through their forwards (also for a channels-last model)."""
    _as_forwarded(_decoder().to(memory_format=layout), _DECODER_LEAVES, (3, 12, 12))


def test_pad_and_transposed_conv_forwards_do_not_run_where_their_output_is_made(monkeypatch):
    """The shortcuts are taken: no forward of theirs runs."""
    ran = []
    for kind in (nn.ConstantPad2d, nn.ConvTranspose2d):
        forward = kind.forward
        monkeypatch.setattr(kind, "forward", lambda m, x, f=forward: ran.append(m) or f(m, x))
    summary(_decoder(), (3, 12, 12))
    assert ran == []


def test_a_transposed_conv_torch_refuses_is_named_with_torchs_words():
    """Other channels than its weight's: torch raises, and summary names the layer."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ConvTranspose2d(4, 2, 3))
    with pytest.raises(RuntimeError, match="expected input") as real:
        model(torch.zeros(1, 1, 8, 8))
    words = str(real.value).split(",")[0]
    with pytest.raises(CnnlabError, match=rf"layer 1 \(ConvTranspose2d\).*{re.escape(words)}"):
        summary(model, (1, 8, 8))


@pytest.mark.parametrize("size", [1, 3, (2,)])
@pytest.mark.parametrize(
    "layout",
    [
        lambda t: t(2, 6, 7),  # (B, C, L)
        lambda t: t(2, 7, 6).transpose(1, 2),  # tokens (B, L, C) read as (B, C, L): Swin's pooler
        lambda t: t(2, 6, 14)[..., ::2],  # strided: left to torch
        lambda t: t(1, 1, 7), lambda t: t(3, 1, 5).transpose(1, 2), lambda t: t(2, 6, 1),
    ],
)  # fmt: skip
def test_adaptive_avg_pool1d_is_made_in_torchs_layout(layout, size):
    """F.adaptive_avg_pool1d made on meta has the shape and strides torch's CPU kernel gives
    it, or is left to torch (a layout its rule does not cover)."""
    out = made(F.adaptive_avg_pool1d, (layout(lambda *s: torch.empty(s, device="meta")), size), {})
    want = F.adaptive_avg_pool1d(layout(torch.randn), size)
    assert out is None or (out.shape, out.stride()) == (want.shape, want.stride())
    x = layout(torch.randn)
    assert out is not None or x.stride()[-1] == 2 or x.shape[-1] == 1  # strided; ambiguous


@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (-1, 2, 0, -3), (0, 0, 0, 0), (1, 1)])
@pytest.mark.parametrize(
    "layout",
    [
        lambda t: t(2, 3, 5, 6), lambda t: t(2, 3, 5, 6).to(memory_format=torch.channels_last),
        lambda t: t(2, 3, 5, 12)[..., ::2], lambda t: t(2, 5, 6, 3).permute(0, 3, 1, 2)[..., 1:],
        lambda t: t(1, 4, 1, 1).to(memory_format=torch.channels_last),  # both layouts at once
        lambda t: t(2, 3, 5, 6).transpose(2, 3), lambda t: t(3, 5, 6),
    ],
)  # fmt: skip
def test_a_constant_pad_is_made_in_torchs_layout(layout, pad):
    """F.pad's constant output made on meta has the shape and strides torch's CPU kernel
    gives it: x's suggested layout (channels-last for a channels-last map), a dense x's own
    strides where nothing is padded (a clone)."""
    out = made(F.pad, (layout(lambda *s: torch.empty(s, device="meta")), pad), {})
    try:
        want = F.pad(layout(torch.randn), pad)
    except RuntimeError:  # cropped below one pixel: left to torch, which raises
        assert out is None
        return
    if out is None:  # a clone of a layout that is not dense: left to torch
        assert not any(pad)
        return
    assert (out.shape, out.stride()) == (want.shape, want.stride())


def test_a_view_torch_refuses_after_a_channels_last_pad_is_refused_by_name():
    """A channels-last map padded stays channels-last, so `.view` of it fails in torch, and
    in the summary, which names the layer rather than give the rows of a model that fails."""

    class PadThenView(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pad = nn.Conv2d(3, 4, 3), nn.ZeroPad2d(1)

        def forward(self, x):
            y = self.pad(self.conv(x).contiguous(memory_format=torch.channels_last))
            return y.view(y.shape[0], -1)

    with pytest.raises(RuntimeError, match="view size is not compatible"):
        PadThenView()(torch.zeros(1, 3, 8, 8))
    with pytest.raises(CnnlabError, match="view size is not compatible"):
        summary(PadThenView(), (3, 8, 8))
