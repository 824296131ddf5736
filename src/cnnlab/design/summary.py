"""A per-layer summary of a spec or of any ``nn.Module``, with design lints (§2, §3.2, §5.2).

Facts first, rendering second: `summary` returns a frozen `Summary` of `SummaryRow`s and
`Lint`s; ``str()``, ``to_dict()`` and the CLI only render it.

How it works. The model runs once on the **meta device** (shapes only, no arithmetic): a
module is copied with its parameters and buffers replaced by meta tensors (the user's model is
never touched: same device, mode, hooks, requires_grad); a spec is built directly on meta.
Where a model cannot run on meta (``.item()``, tensors made on the CPU inside ``forward``), a
real batch-1 forward under ``no_grad`` on a copy in eval mode takes over. During the run a
`TorchFunctionMode` sees every torch call, so plain functions (``F.relu``, ``torch.flatten``,
``x + y``, ``torch.cat``) count too, and tags each tensor with:

* its receptive field per axis, stepped by `geometry.rf_step` at every conv and pool;
  element-wise ops, ``+`` and ``torch.cat`` take the *largest* field of their inputs (through
  branches: the largest); flatten, linear on a flattened map and global pooling see the
  whole image;
* what the lints need: the last linear map reached through linear ops only (§4.1), the last
  sigmoid/tanh (§4.2), the flatten it came from (§5.2).

Rows: one per leaf module (dotted name, class name, output shape of one image), plus one for
a container whose output comes from its own code (``torch.cat`` in a ``ConcatPool2d``) rather
than from a child. MACs follow torchinfo's convention, so totals agree: a conv does
C_out·C_in/groups·kh·kw multiply-accumulates per output position plus C_out for its bias, a
linear layer in·out (+ out), any other layer with parameters (BatchNorm) one per parameter.

Lints (`Lint.code`): ``floor`` (a window never reads the right/bottom edge, §2.2),
``even-kernel-same`` (asymmetric 'same' padding, §2.3), ``linear-collapse`` (two linear maps
with no nonlinearity between, §4.1), ``flatten-explosion`` and ``fixed-size`` (the flatten
head, §5.2), ``rf-small`` (the head's input does not see the whole image, §3.2),
``saturating`` (sigmoid/tanh between hidden layers of a deep net, §4.2).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnnlab import geometry
from cnnlab.errors import CnnlabError, SpecError
from cnnlab.geometry import RF

__all__ = ["Lint", "Summary", "SummaryRow", "summary"]

FLATTEN_SHARE = 0.5  # flatten-explosion lint: first dense layer holds more than this share
DEEP_NET = 6  # saturating lint: a net with at least this many conv/linear layers is deep
BYTES_PER_VALUE = 4  # activation memory is counted at float32


# --- facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """One layer call: output_shape is one image's (C, H, W) or (F,); receptive_field and
    jump in input pixels (the larger axis); macs of one image."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    receptive_field: int
    jump: int
    macs: int


@dataclass(frozen=True)
class Lint:
    """A design warning: `code` (e.g. "floor"), the layer's dotted name, why and the fix."""

    code: str
    layer: str
    message: str


@dataclass(frozen=True)
class Summary:
    """Rows in execution order, totals of the whole model (each parameter counted once),
    activation memory per image in bytes (float32, the sum of every row's output), lints."""

    rows: tuple[SummaryRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    activation_bytes: int
    input_size: tuple[int, ...]
    warnings: list[Lint]  # a list, as DESIGN.md's public API names it (`== []` when clean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain ints, strings and lists."""
        return {
            "input_size": list(self.input_size),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "activation_bytes": self.activation_bytes,
            "rows": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows],
            "warnings": [asdict(w) for w in self.warnings],
        }

    def __str__(self) -> str:
        return _render(self)


# --- the tensor tag ---------------------------------------------------------------------


class _Tag(NamedTuple):
    """What the tracer knows about one tensor (stored on it as ``_cnnlab_tag``)."""

    rf: tuple[RF, RF]  # receptive field along height, width
    linear_from: str | None = None  # last conv/linear reached through linear ops only
    squashed_by: str | None = None  # last sigmoid/tanh reached through linear ops only
    flat_from: tuple[str, tuple[int, ...], bool] | None = None  # (layer, map shape, size-free)
    size_free: bool = False  # spatial size set by an adaptive/global pool, not by the input
    pad: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) zeros that an
    # F.pad just put around the map (a 'same' conv at stride > 1): the next window's floor
    # and symmetry lints look through them at the real pixels
    is_row: bool = False  # already shown as some row's output


_TAG = "_cnnlab_tag"


class _Layer(NamedTuple):
    """What a module's rows say that does not depend on its input, worked out once."""

    name: str  # dotted
    kind: str  # class name
    params: int  # its own
    trainable: int
    macs: Callable[[nn.Module, Tensor], int] | None  # MACs by type (_MACS); None: no rule


def _tag_of(t: object) -> _Tag | None:
    return getattr(t, _TAG, None) if isinstance(t, Tensor) else None


def _fns(*names: str, owner: object = F) -> set[Callable]:
    """The torch callables with these names that exist in this torch version."""
    return {getattr(owner, n) for n in names if hasattr(owner, n)}


_T = torch.Tensor
_META = torch.device("meta")  # torch.empty(device="meta") parses the string on every call
_CONV = _fns("conv2d")
_PAD = _fns("pad")
_MAX_POOL = _fns("max_pool2d", "max_pool2d_with_indices") | _fns("max_pool2d", owner=torch)
_AVG_POOL = _fns("avg_pool2d")
_PLAIN_POOL = _fns("max_pool2d", "avg_pool2d")
_SHAPE_ONLY_WINDOWS = _CONV | _PLAIN_POOL  # windows whose meta output `_meta_window` makes
_ADAPTIVE = _fns("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices")
_LINEAR = _fns("linear")
_SQUASH = _fns("sigmoid", "tanh", owner=torch) | _fns(
    "sigmoid", "tanh", "sigmoid_", "tanh_", owner=_T
)
_RESHAPE = _fns("flatten", "reshape", owner=torch) | _fns("flatten", "reshape", "view", owner=_T)
# Linear in their tensor inputs (BatchNorm as at inference, §4.1); max pooling is not.
_LINEAR_OPS = (
    _RESHAPE
    | _AVG_POOL
    | _fns("adaptive_avg_pool2d", "batch_norm", "dropout", "dropout2d", "pad", "interpolate")
    | _fns("add", "sub", "cat", "concat", "mean", owner=torch)
    | _fns("add", "add_", "sub", "sub_", "mean", "contiguous", owner=_T)
    | _fns("__add__", "__radd__", "__iadd__", "__sub__", "__isub__", owner=_T)
)
# Ops whose output has the input's shape, whose meta kernels are slow (BatchNorm: 0.7 ms a
# call, 30 of ResNet-50's 40 ms): on meta their output is made directly. Value: the position
# of the `inplace` argument, if any.
_SAME_SHAPE_INPLACE_AT = {
    f: i
    for f, i in (
        (F.batch_norm, None),
        (F.layer_norm, None),
        (F.group_norm, None),
        (F.relu, 1),
        (F.leaky_relu, 2),
        (F.elu, 2),
        (F.gelu, None),
        (F.silu, 1),
        (F.hardswish, 1),
        (F.dropout, 3),
        (F.dropout2d, 3),
        (torch.sigmoid, None),
        (torch.tanh, None),
    )
}


_INPLACE = _fns("add_", "sub_", "mul_", "__iadd__", "__isub__", "__imul__", owner=_T)
_SAME_SHAPE_BINARY = _INPLACE | _fns("add", "sub", "mul", "__add__", "__sub__", "__mul__", owner=_T)


# Layers whose output is their input's shape, by exact type, and the call they stand for.
_SAME_SHAPE_MODULES: dict[type, Callable] = {
    nn.BatchNorm2d: F.batch_norm,
    nn.ReLU: F.relu,
    nn.LeakyReLU: F.leaky_relu,
    nn.ELU: F.elu,
    nn.GELU: F.gelu,
    nn.SiLU: F.silu,
    nn.Sigmoid: torch.sigmoid,
    nn.Tanh: torch.tanh,
    nn.Dropout: F.dropout,
    nn.Dropout2d: F.dropout2d,
}


def _fits(module: nn.Module, x: Any) -> bool:
    """x is a meta tensor the shape-keeping `module` accepts (BatchNorm2d: (B, C, H, W))."""
    if not isinstance(x, Tensor) or not x.is_meta:
        return False
    if isinstance(module, nn.BatchNorm2d):
        return x.dim() == 4 and x.shape[1] == module.num_features
    return True


# --- window geometry of conv and pool calls -----------------------------------------------


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _pair(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return default
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


class _Window(NamedTuple):
    """A conv or pooling window per axis (h, w); padding is the left/top pad."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool = False
    same: bool = False  # padding="same": PyTorch pads (t // 2, t - t // 2), t = D(K - 1)


def _window(func: Callable, args: tuple, kwargs: dict) -> _Window | None:
    """The window of a conv/pool call, None for any other call (adaptive pools included)."""
    if func in _CONV:
        weight = _arg(args, kwargs, 1, "weight")
        kernel = tuple(weight.shape[-2:])
        stride = _pair(_arg(args, kwargs, 3, "stride", 1), (1, 1))
        dilation = _pair(_arg(args, kwargs, 5, "dilation", 1), (1, 1))
        padding = _arg(args, kwargs, 4, "padding", 0)
        if isinstance(padding, str):
            same = padding == "same"
            pads = [
                geometry.same_padding(k, d)[0] if same else 0
                for k, d in zip(kernel, dilation, strict=True)
            ]
            return _Window(kernel, stride, tuple(pads), dilation, same=same)
        return _Window(kernel, stride, _pair(padding, (0, 0)), dilation)
    if func in _MAX_POOL or func in _AVG_POOL:
        kernel = _pair(_arg(args, kwargs, 1, "kernel_size"), (1, 1))
        stride = _pair(_arg(args, kwargs, 2, "stride"), kernel)
        padding = _pair(_arg(args, kwargs, 3, "padding", 0), (0, 0))
        if func in _AVG_POOL:
            return _Window(
                kernel, stride, padding, (1, 1), bool(_arg(args, kwargs, 4, "ceil_mode"))
            )
        dilation = _pair(_arg(args, kwargs, 4, "dilation", 1), (1, 1))
        return _Window(kernel, stride, padding, dilation, bool(_arg(args, kwargs, 5, "ceil_mode")))
    return None


# geometry's functions check every argument; a ResNet-50 trace asks ~1,500 times about a few
# dozen distinct windows, so the answers are cached (2 ms of a 10 ms trace), per window and
# input: one lookup a call instead of one per axis and function (0.15 ms more).
_rf_step = functools.lru_cache(4096)(geometry.rf_step)


@functools.lru_cache(4096)
def _window_map(size: tuple[int, int], w: _Window) -> tuple[tuple[int, int], tuple[int, int]]:
    """((H, W) out of window w over a `size` map with ceil_mode=False, real pixels it drops
    at the (bottom, right) edge: the floor problem, §2.2). Raises geometry's SpecError
    below 1×1."""
    out_map = tuple(
        geometry.conv_output_size(size[i], w.kernel[i], w.padding[i], w.stride[i], w.dilation[i])
        for i in (0, 1)
    )
    if w.same or w.ceil_mode:
        return out_map, (0, 0)
    # Along an axis where the window jumps further than it reaches (ResNet's 1×1/2 shortcut)
    # pixels are skipped everywhere by design; losing the last one is that pattern, not an
    # edge problem. Each axis is judged on its own.
    dropped = tuple(
        0
        if w.stride[i] > w.dilation[i] * (w.kernel[i] - 1) + 1
        else geometry.dropped_pixels(size[i], w.kernel[i], w.padding[i], w.stride[i], w.dilation[i])
        for i in (0, 1)
    )
    return out_map, dropped


def _zero_pad(func: Callable, args: tuple, kwargs: dict) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of an F.pad call that puts zeros around both spatial axes,
    None for any other padding (reflect, replicate, a non-zero value, other axes)."""
    pad = tuple(_arg(args, kwargs, 1, "pad", ()))
    mode = _arg(args, kwargs, 2, "mode", "constant")
    value = _arg(args, kwargs, 3, "value", None)
    if mode != "constant" or value not in (None, 0, 0.0) or len(pad) != 4 or min(pad) < 0:
        return None
    left, right, top, bottom = (int(p) for p in pad)  # F.pad order: last axis (W) first
    return top, bottom, left, right


@functools.lru_cache(4096)
def _window_rf(rf: tuple[RF, RF], w: _Window) -> tuple[RF, RF]:
    """The receptive field (height, width) after window w (geometry.rf_step per axis)."""
    return tuple(
        geometry.rf_step(r, w.kernel[i], w.stride[i], w.padding[i], w.dilation[i])
        for i, r in enumerate(rf)
    )


def _meta_window(
    func: Callable, args: tuple, kwargs: dict, x: Tensor, w: _Window, out_map: tuple[int, int]
) -> Tensor | None:
    """The output of a conv/pool on a meta (B, C, H, W) input, made from its known shape
    (a meta conv kernel costs 25 µs); None where the kernel must run: a real input, ceil_mode,
    pool indices, or channels that do not match (the kernel then raises torch's error)."""
    if not x.is_meta or x.dim() != 4 or w.ceil_mode or func not in _SHAPE_ONLY_WINDOWS:
        return None
    channels = x.shape[1]
    if func in _CONV:
        weight = _arg(args, kwargs, 1, "weight")
        if weight.shape[1] * _arg(args, kwargs, 6, "groups", 1) != channels:
            return None
        channels = weight.shape[0]
    elif func in _MAX_POOL and _arg(args, kwargs, 6, "return_indices", False):
        return None
    return torch.empty((x.shape[0], channels, *out_map), dtype=x.dtype, device=_META)


def _linear_shape(x: Tensor, weight: Any, bias: Any) -> tuple[int, ...] | None:
    """The output shape of F.linear(x, weight, bias) on meta: (*x.shape[:-1], out); None
    where the kernel must run (and raise torch's error): shapes or dtypes that do not match."""
    if not isinstance(weight, Tensor) or weight.dim() != 2 or x.dim() == 0:
        return None
    out, features = weight.shape
    if x.shape[-1] != features or not x.is_floating_point() or not _meta_as(weight, x):
        return None
    if bias is not None and not (_meta_as(bias, x) and tuple(bias.shape) == (out,)):
        return None
    return (*x.shape[:-1], out)


def _meta_as(t: Any, x: Tensor) -> bool:
    """t is a meta tensor of x's dtype."""
    return isinstance(t, Tensor) and t.is_meta and t.dtype == x.dtype


def _adaptive_shape(x: Tensor, output_size: Any) -> tuple[int, ...] | None:
    """The output shape of F.adaptive_avg_pool2d(x, output_size) on a (B, C, H, W) meta
    input: (B, C, h, w), None in output_size keeping the input's size; None where the
    kernel must run."""
    if x.dim() != 4 or min(x.shape) < 1 or not x.is_floating_point():
        return None
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(size) != 2:
        return None
    size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(size))
    if not all(type(s) is int and s >= 1 for s in size):
        return None
    return (*x.shape[:2], *size)


def _new_meta(x: Tensor) -> Tensor:
    """A new tensor of meta x's shape and dtype: x.detach() makes one in 0.4 µs, torch.empty
    in 2.1 µs (a meta tensor has no data to share; ~100 calls in a ResNet-50 trace)."""
    return x.detach()


def _divides(in_map: tuple[int, ...], out_map: tuple[int, ...] | None) -> bool:
    return out_map is not None and all(i % o == 0 for i, o in zip(in_map, out_map, strict=True))


def _global_rf(rf: RF, n: int, extent: int) -> RF:
    """A unit that pools all n positions of a map whose units have field `rf` (one axis)."""
    size = max(extent, rf.size + (n - 1) * rf.jump)
    return RF(size=size, jump=rf.jump * n, start=rf.start + (n - 1) * rf.jump / 2)


# --- the tracer ----------------------------------------------------------------------------


class _Tracer(TorchFunctionMode):
    """Tags every tensor a traced forward makes; rows come from wrapped module forwards."""

    def __init__(self, modules: Iterable[tuple[str, nn.Module]], image: tuple[int, int]) -> None:
        """Prepares a model (ours: a copy or a fresh build) in one walk over its named
        `modules`: eval mode, wrapped forwards, names, parameter counts (each shared parameter
        once)."""
        super().__init__()
        self.image = image  # (H, W) of the input
        self.names: dict[int, str] = {}
        self.wrapped: list[nn.Module] = []  # modules whose forward `instrument` wrapped
        unique: dict[int, Tensor] = {}
        for name, m in modules:
            params = trainable = 0  # the module's own
            for p in m._parameters.values():
                if p is not None:
                    unique[id(p)] = p
                    params += p.numel()
                    trainable += p.numel() if p.requires_grad else 0
            self.names[id(m)] = name
            # eval mode: batch norm on its running statistics. object.__setattr__ skips
            # nn.Module's checks for parameters and submodules (0.6 ms for ResNet-50, with
            # the wrapped forward below).
            object.__setattr__(m, "training", False)
            layer = _Layer(name, type(m).__name__, params, trainable, _macs_rule(type(m)))
            self.instrument(m, layer)
        self.total_params = sum(p.numel() for p in unique.values())
        self.trainable_params = sum(p.numel() for p in unique.values() if p.requires_grad)
        self.stack: list[nn.Module] = []
        self.rows: list[SummaryRow] = []
        self.lints: dict[tuple[str, str], Lint] = {}
        self.weight_layers = 0
        self.head: tuple[str, tuple[RF, RF], tuple[int, ...]] | None = None
        self.dense_after_flatten: tuple[str, str, tuple[int, ...], bool, int] | None = None
        self.squash_into: list[tuple[str, str]] = []  # (activation layer, weight layer)

    # where we are ------------------------------------------------------------------------
    @property
    def layer(self) -> str:
        """Dotted name of the innermost running module; the model itself is "(model)"."""
        return (self.names.get(id(self.stack[-1])) if self.stack else None) or "(model)"

    def _where(self) -> str:
        kind = type(self.stack[-1]).__name__ if self.stack else "model"
        return f"layer {self.layer} ({kind})"

    def lint(self, code: str, message: str, layer: str | None = None) -> None:
        layer = self.layer if layer is None else layer
        self.lints.setdefault((code, layer), Lint(code, layer, message))

    # module calls -------------------------------------------------------------------------
    def instrument(self, module: nn.Module, layer: _Layer) -> None:
        """Wrap `module.forward` (on our copy) to keep the stack of running modules and to add
        its row. Cheaper than two hooks per module: hooks send every call down nn.Module's
        slow path (3 ms of a ResNet-50 trace)."""
        forward = module.forward
        same_shape = _SAME_SHAPE_MODULES.get(type(module))  # exact type: no overridden forward

        def traced_forward(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(module)
            output = None
            if same_shape is not None and len(args) == 1 and not kwargs:
                output = self._same_shape(same_shape, module, args[0])
            if output is None:
                output = forward(*args, **kwargs)  # on an error the stack names the layer
            self.stack.pop()
            with torch._C.DisableTorchFunction():  # our own reads need no tracing
                self._row(module, layer, _first_tensor(output))
            return output

        object.__setattr__(module, "forward", traced_forward)  # as for `training` above
        self.wrapped.append(module)

    def release(self) -> None:
        """Unwrap the forwards: a wrapper and its module refer to each other, and such
        cycles wait for the garbage collector, whose full passes over them made the mean
        call 1.3-1.5x its median; without them the copy is freed when the call returns."""
        for module in self.wrapped:
            del module.__dict__["forward"]
        self.wrapped.clear()

    def _same_shape(self, func: Callable, module: nn.Module, x: Any) -> Tensor | None:
        """A shape-keeping layer on a meta input: its output, tagged as `func` would be,
        without running its forward (BatchNorm and ReLU are 100 of ResNet-50's 160 calls).
        None where the layer must run: a real input, or one BatchNorm2d would refuse."""
        with torch._C.DisableTorchFunction():
            if not _fits(module, x):
                return None
            # vars(): a getattr that misses goes through nn.Module.__getattr__ (1.2 µs against 0.15)
            out = x if vars(module).get("inplace", False) else _new_meta(x)
            tag = getattr(x, _TAG, None)
            if tag is not None and x.dim() == 4 and x.shape[-2:] != (1, 1):
                setattr(out, _TAG, self._elementwise_tag(func, tag))
            else:
                setattr(out, _TAG, self._tag(func, (x,), {}, out, None))
        return out

    def _elementwise_tag(self, func: Callable, tag: _Tag) -> _Tag:
        """What `_tag` makes of an element-wise func on a map larger than 1×1, in a quarter of
        its time (0.2 ms of a ResNet-50 call): the field stays, a linear op (batch norm)
        keeps the lint facts, any other clears them; sigmoid/tanh is the new squash."""
        if func in _LINEAR_OPS:
            return _Tag(tag.rf, tag.linear_from, tag.squashed_by, tag.flat_from, tag.size_free)
        squashed_by = self.layer if func in _SQUASH else None
        return _Tag(tag.rf, None, squashed_by, None, tag.size_free)

    def _row(self, module: nn.Module, layer: _Layer, out: Tensor | None) -> None:
        tag = _tag_of(out)
        if tag is None:
            return  # not computed from the input (a weight parametrization): not a layer
        leaf = not module._modules
        if not leaf and tag.is_row:
            return  # a container whose output is a child's: that child's row shows it
        name, kind, params, trainable, macs_rule = layer
        h, w = tag.rf
        rf = w if w.size > h.size else h  # the larger axis (ties: height)
        if macs_rule is not None:
            macs = macs_rule(module, out)
        else:  # torchinfo's convention: one per parameter of a leaf, containers 0
            macs = params if leaf else 0
        shape = tuple(out.shape[1:])
        self.rows.append(SummaryRow(name, kind, shape, params, trainable, rf.size, rf.jump, macs))
        setattr(out, _TAG, _Tag(*tag[:-1], is_row=True))  # tag._replace: twice the time

    # every torch call ---------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        window = _window(func, args, kwargs)
        if window is None:
            out = self._call(func, args, kwargs)
        else:
            x = args[0] if args else kwargs["input"]
            out_map = self._check_window(x, window)
            out = _meta_window(func, args, kwargs, x, window, out_map)
            if out is None:
                out = func(*args, **kwargs)
        first = out[0] if isinstance(out, tuple) and out else out  # max-pool with indices
        if isinstance(first, Tensor):
            tag = self._tag(func, args, kwargs, first, window)
            if tag is not None:
                setattr(first, _TAG, tag)
        return out

    @staticmethod
    def _call(func: Callable, args: tuple, kwargs: dict) -> Any:
        """func(*args, **kwargs); on meta, element-wise ops make their output directly."""
        x = args[0] if args else None
        if not isinstance(x, Tensor) or not x.is_meta:
            return func(*args, **kwargs)
        at = _SAME_SHAPE_INPLACE_AT.get(func, -1)
        if at != -1:
            if at is not None and _arg(args, kwargs, at, "inplace", False):
                return x
            return _new_meta(x)
        if func in _SAME_SHAPE_BINARY and not kwargs and len(args) == 2:
            y = args[1]  # `out += identity`: the same shape and dtype, no broadcasting
            if isinstance(y, Tensor) and y.shape == x.shape and y.dtype == x.dtype:
                return x if func in _INPLACE else _new_meta(x)
        if func in _LINEAR:  # the meta kernel is a Python decomposition: 290 µs a call
            shape = _linear_shape(x, _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias"))
            if shape is not None:
                return torch.empty(shape, dtype=x.dtype, device=_META)
        if func is F.adaptive_avg_pool2d and len(args) + len(kwargs) == 2:  # Python too: 140 µs
            shape = _adaptive_shape(x, _arg(args, kwargs, 1, "output_size"))
            if shape is not None:
                return torch.empty(shape, dtype=x.dtype, device=_META)
        return func(*args, **kwargs)

    def _check_window(self, x: Tensor, w: _Window) -> tuple[int, int]:
        """Output below 1×1 is an error; the floor problem and even 'same' kernels are lints.

        Returns the output's (H, W) with ceil_mode=False (with padding="same": the input's).
        """
        size = tuple(x.shape[-2:])
        if w.same:  # stride 1, D(K − 1) zeros in all: the output is the input's size
            odd = [(k, d) for k, d in zip(w.kernel, w.dilation, strict=True) if d * (k - 1) % 2]
            if odd:
                self._even_same_lint(w, geometry.same_padding(*odd[0]))
            return size
        try:
            out_map, dropped = _window_map(size, w)
        except SpecError as err:
            raise SpecError(f"{self._where()}: on a {size[0]}×{size[1]} input, {err}") from None
        pad = getattr(x, _TAG, None)
        pad = pad.pad if pad is not None else None
        if pad is not None and w.padding == (0, 0):  # zeros put there by F.pad: 'same' at S > 1
            # the last `after` unread pixels of the padded map are zeros, not the image's
            dropped = (max(0, dropped[0] - pad[1]), max(0, dropped[1] - pad[3]))
            pairs = ((pad[0], pad[1]), (pad[2], pad[3]))
            reach = [d * (k - 1) for k, d in zip(w.kernel, w.dilation, strict=True)]
            asymmetric = [
                p for p, t in zip(pairs, reach, strict=True) if sum(p) == t and p[0] != p[1]
            ]
            if asymmetric:
                self._even_same_lint(w, asymmetric[0])
            size = (size[0] - pad[0] - pad[1], size[1] - pad[2] - pad[3])  # the real map
        if any(dropped):
            edges = " and ".join(  # each axis with its own stride and padding
                f"along the {axis_name} (stride {w.stride[i]}, padding "
                f"{self._padding_text(w, pad, i)}) the last {dropped[i]} {what} at the {edge}"
                for i, axis_name, what, edge in (
                    (1, "width", "column(s)", "right"),
                    (0, "height", "row(s)", "bottom"),
                )
                if dropped[i]
            )
            self.lint(
                "floor",
                f"a {w.kernel[0]}×{w.kernel[1]} window over {size[0]}×{size[1]} never reads, "
                f"{edges}: "
                "(I − K + 2P)/S is not an integer, so the output size is floored and those "
                "pixels are ignored (§2.2, the floor problem). Fix: choose padding/stride (or "
                "the input size) so that I − K + 2P is a multiple of S.",
            )
        return out_map

    @staticmethod
    def _padding_text(w: _Window, pad: tuple[int, int, int, int] | None, axis: int) -> str:
        """The window's padding along `axis`, or the zeros an F.pad put before and after."""
        if pad is not None and w.padding == (0, 0):
            return f"{pad[2 * axis]} before and {pad[2 * axis + 1]} after"
        return str(w.padding[axis])

    def _even_same_lint(self, w: _Window, pads: tuple[int, int]) -> None:
        before, after = pads
        self.lint(
            "even-kernel-same",
            f"kernel {w.kernel[0]}×{w.kernel[1]} with padding='same' pads {before} "
            f"before and {after} after (right/bottom): the padding is asymmetric and "
            "shifts the feature map by half a pixel (§2.3: P = (K − 1)/2 needs an odd "
            "K). Fix: use an odd kernel.",
        )

    def _tag(self, func: Callable, args: tuple, kwargs: dict, out: Tensor, window) -> _Tag | None:
        """The tag of `out` = func(*args, **kwargs), from its inputs' tags (None: no input
        has one). Each field is worked out once and the tag built at the end (no _replace:
        0.7 µs each, at 175 calls in a ResNet-50 trace)."""
        tagged = []  # (tensor, tag) of every input that carries a tag
        for a in (*args, *kwargs.values()) if kwargs else args:
            for t in a if type(a) in (list, tuple) else (a,):  # lists: torch.cat
                tag = getattr(t, _TAG, None)
                if tag is not None:
                    tagged.append((t, tag))
        if not tagged:
            return None
        # through branches, the largest field wins (ties: the first input)
        src, base = max(tagged, key=_rf_area) if len(tagged) > 1 else tagged[0]
        rf, size_free = base.rf, base.size_free
        linear_from, squashed_by, flat_from = base.linear_from, base.squashed_by, base.flat_from
        if len(tagged) > 1:  # the lints follow the first input that carries each fact
            tags = [tag for _, tag in tagged]
            size_free = any(t.size_free for t in tags)
            linear_from = _first(t.linear_from for t in tags)
            squashed_by = _first(t.squashed_by for t in tags)
            flat_from = _first(t.flat_from for t in tags)
        if func not in _LINEAR_OPS:
            linear_from = squashed_by = flat_from = None
        pad = _zero_pad(func, args, kwargs) if func in _PAD and src.dim() == 4 else None
        if window is not None:
            rf = _window_rf(rf, window)
        elif pad is not None:  # pixel 0 of the output is pixel −top (−left) of the input
            starts = (pad[0], pad[2])  # top, left
            rf = tuple(
                RF(r.size, r.jump, r.start - p * r.jump) for r, p in zip(rf, starts, strict=True)
            )
        else:
            rf, size_free, flat_from = self._map_change(func, src, out, base, size_free, flat_from)
        if func in _CONV or func in _LINEAR:
            self._weight_layer(func, args, kwargs, base)
            linear_from, squashed_by, flat_from = self.layer, None, None
        elif func in _SQUASH:
            squashed_by = self.layer
        return _Tag(rf, linear_from, squashed_by, flat_from, size_free, pad)

    def _map_change(
        self, func: Callable, src: Tensor, out: Tensor, base: _Tag, size_free: bool, flat_from: Any
    ) -> tuple[tuple[RF, RF], bool, Any]:
        """(receptive field, size_free, flat_from) of `out` for a call with no window, from
        its largest-field input `src`, whose tag is `base`: adaptive and global pooling and
        flatten change the field; flatten records what it flattened (§5.2)."""
        rf = base.rf
        in_map = src.shape[-2:] if src.dim() == 4 else None  # (H, W)
        out_map = out.shape[-2:] if out.dim() == 4 else None
        if func in _ADAPTIVE and in_map and out_map != (1, 1) and _divides(in_map, out_map):
            # output divides input: the adaptive pool is a plain pool with k = s = in/out
            steps = zip(rf, in_map, out_map, strict=True)
            rf = tuple(_rf_step(r, i // o, i // o) for r, i, o in steps)
            size_free = True
        elif in_map and (func in _ADAPTIVE or out_map is None or out_map == (1, 1)):
            # flatten, global or adaptive pooling: each unit sees every position of the map
            if in_map != (1, 1):
                self.head = (self.layer, rf, tuple(src.shape[1:]))
            rf = tuple(_global_rf(r, in_map[i], self.image[i]) for i, r in enumerate(rf))
            size_free = size_free or func not in _RESHAPE  # a pooled size is the input's no more
        if func in _RESHAPE and in_map and in_map != (1, 1) and out_map is None:
            raw = all(r.size == 1 for r in base.rf)  # the image itself: an MLP, no conv head
            flat_from = None if raw else (self.layer, src.shape[1:], base.size_free)
        return rf, size_free, flat_from

    def _weight_layer(self, func: Callable, args: tuple, kwargs: dict, x_tag: _Tag) -> None:
        """Lints that look at what reaches a conv or linear layer."""
        self.weight_layers += 1
        layer = self.layer
        if x_tag.linear_from is not None:
            self.lint(
                "linear-collapse",
                f"layers {x_tag.linear_from} and {layer} are two linear maps with no nonlinearity "
                "between them (only BatchNorm/dropout/flatten/average pooling/additions): "
                "W2(W1 x) collapses into one linear map (§4.1). Fix: put an activation (ReLU) "
                "between them — unless the factorisation is intended (depthwise-separable, "
                "linear bottleneck).",
            )
        if x_tag.squashed_by is not None:
            self.squash_into.append((x_tag.squashed_by, layer))
        if func in _LINEAR and x_tag.flat_from is not None and self.dense_after_flatten is None:
            weight, bias = _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
            n = weight.numel() + (bias.numel() if bias is not None else 0)
            self.dense_after_flatten = (layer, *x_tag.flat_from, n)

    # after the run ---------------------------------------------------------------------------
    def final_lints(self, total_params: int) -> tuple[Lint, ...]:
        """Lints that need the whole run: head field, flatten head, saturating activations."""
        if self.head is not None:
            layer, rf, shape = self.head
            short = [  # a field of 1 px is the raw image (an MLP): no conv base to blame
                (axis, r.size, n)
                for axis, r, n in zip(("height", "width"), rf, self.image, strict=True)
                if 1 < r.size < n
            ]
            if short:
                axis, size, n = short[0]
                self.lint(
                    "rf-small",
                    f"the map entering the head ({_shape(shape)}) has a receptive "
                    f"field of {size} px along the {axis} of a {n}-px input: no unit sees the "
                    "whole image, so the head only combines local evidence (§3.2). Fix: more "
                    "layers, stride, pooling or dilation before the head.",
                    layer,
                )
        if self.dense_after_flatten is not None:
            dense, flatten, shape, size_free, n = self.dense_after_flatten
            features = math.prod(shape)
            if n > FLATTEN_SHARE * total_params:
                self.lint(
                    "flatten-explosion",
                    f"the first dense layer after flattening {_shape(shape)} into "
                    f"{features:,} features holds {n:,} of {total_params:,} parameters "
                    f"({n / total_params:.1%}): the flatten head is where the parameters live "
                    "(§5.2). Fix: global average pooling (AdaptiveAvgPool2d(1)) before it, or "
                    "more downsampling.",
                    dense,
                )
            if not size_free and len(shape) == 3:
                h, w = self.image
                self.lint(
                    "fixed-size",
                    f"flattening the {_shape(shape)} map ties the dense layer "
                    f"{dense} to {features:,} features, so the model accepts only {h}×{w} "
                    "inputs (§5.2, the fixed-size trap). Fix: global average pooling frees the "
                    "input size.",
                    flatten,
                )
        if self.squash_into and self.weight_layers >= DEEP_NET:
            act, into = self.squash_into[0]
            self.lint(
                "saturating",
                f"{len(self.squash_into)} sigmoid/tanh output(s) feed hidden layers (first: "
                f"{act} into {into}) of a net with {self.weight_layers} conv/linear layers: their "
                "derivative is at most 0.25 (sigmoid) or 1 and shrinks when saturated, so "
                "gradients vanish on the way back (§4.2). Fix: ReLU/GELU between hidden layers.",
                act,
            )
        return tuple(self.lints.values())


def _rf_area(pair: tuple[Tensor, _Tag]) -> int:
    return pair[1].rf[0].size * pair[1].rf[1].size


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return next((t for t in map(_first_tensor, output) if t is not None), None)
    return None


# --- MACs by module type (torchinfo's convention) -------------------------------------------


def _conv_macs(m: nn.Conv2d, out: Tensor) -> int:
    """Per output position C_out·C_in/groups·kh·kw, + C_out with a bias (torchinfo counts the
    bias as a MAC per position too)."""
    per_position = m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return (per_position + (m.out_channels if m.bias is not None else 0)) * math.prod(out.shape[2:])


def _linear_macs(m: nn.Linear, out: Tensor) -> int:
    """in·out (+ out with a bias) per output row."""
    bias = m.out_features if m.bias is not None else 0
    return (m.in_features * m.out_features + bias) * math.prod(out.shape[:-1])


_MACS: dict[type, Callable[[Any, Tensor], int]] = {
    nn.Conv1d: _conv_macs,
    nn.Conv2d: _conv_macs,
    nn.Conv3d: _conv_macs,
    nn.Linear: _linear_macs,
}


@functools.cache  # by type: a walk up the class tree per module was 0.15 ms of a ResNet-50 call
def _macs_rule(module_type: type) -> Callable[[Any, Tensor], int] | None:
    """The MACs rule of a module type (a subclass of Conv2d counts as one), None for other
    types: a leaf with parameters (BatchNorm, LayerNorm, PReLU...) then counts one MAC per
    parameter, torchinfo's convention, a container 0 (its children have rows)."""
    return next((_MACS[cls] for cls in module_type.__mro__ if cls in _MACS), None)


# --- running the model ----------------------------------------------------------------------


_Named = list[tuple[str, nn.Module]]  # (dotted name, module), as model.named_modules()


def _copy_module(model: nn.Module, make: Callable[[Tensor], Tensor]) -> tuple[nn.Module, _Named]:
    """A copy of `model` whose tensors are make(tensor) and whose modules have no hooks, and
    the copy's named modules (one walk over the modules for the copy and the tracer).

    A deepcopy specialised for modules (`_copy_modules`): parameters, buffers and tensor
    attributes are made by `make` (`_meta`: no data is copied; a tensor shared by two modules
    is made once), hook dicts come back empty, immutable attributes are shared and every
    other attribute is deep-copied, so nothing the trace does can reach the original. 1.6 ms
    for ResNet-50 on meta, against 5 ms for copy.deepcopy with a memo. A model with a module
    that defines __deepcopy__ (parametrizations) goes through copy.deepcopy, with the same
    stand-ins.
    """
    named = list(model.named_modules())
    modules = [m for _, m in named]
    memo: dict[int, Any] = {}  # id of an original (module, tensor, attribute) -> its copy

    def twin(t: Tensor | None, parameter: bool = False) -> Tensor | None:
        if t is None:
            return None
        new = memo.get(id(t))
        if new is None:
            new = nn.Parameter(make(t), t.requires_grad) if parameter else make(t)
            memo[id(t)] = new
        return new

    if any(hasattr(type(m), "__deepcopy__") for m in modules):
        _deepcopy_modules(model, modules, twin, memo)
    else:
        _copy_modules(modules, twin, memo)
    return memo[id(model)], [(name, memo[id(m)]) for name, m in named]


def _copy_modules(modules: list[nn.Module], twin: Callable, memo: dict[int, Any]) -> None:
    """Copies every module into memo, in one pass over each module's attributes."""
    for module in modules:  # shells and tensors first, for attributes that point at them
        memo[id(module)] = object.__new__(type(module))
        for p in module._parameters.values():
            twin(p, parameter=True)
        for t in module._buffers.values():
            twin(t)
    for module in modules:
        state = vars(module).copy()
        for key, value in state.items():
            kind = type(value)
            if key in _HOOK_DICTS:  # half of all attributes: tested first
                state[key] = kind()
            elif kind in _ATOMIC or (kind is tuple and _atomic_items(value)):
                continue  # a flag, a name, kernel_size=(3, 3): immutable, shared
            elif key in _TENSOR_DICTS:  # parameters, buffers, submodules: copied above
                state[key] = {k: None if v is None else memo[id(v)] for k, v in value.items()}
            elif isinstance(value, Tensor):
                state[key] = twin(value)
            elif kind in (set, list) and _atomic_items(value):
                state[key] = kind(value)  # the set of non-persistent buffer names
            else:
                state[key] = memo[id(value)] if id(value) in memo else copy.deepcopy(value, memo)
        memo[id(module)].__dict__.update(state)


def _deepcopy_modules(
    model: nn.Module, modules: list[nn.Module], twin: Callable, memo: dict[int, Any]
) -> None:
    """copy.deepcopy(model) with the tensors' twins and empty hook dicts put in its memo
    (where it also leaves every module's copy)."""
    for module in modules:
        for p in module._parameters.values():
            twin(p, parameter=True)
        for value in (*vars(module).values(), *module._buffers.values()):
            if isinstance(value, Tensor):
                twin(value)
        for key in _HOOK_DICTS & vars(module).keys():
            memo[id(vars(module)[key])] = type(vars(module)[key])()
    copy.deepcopy(model, memo)


_ATOMIC = frozenset({int, float, complex, bool, str, bytes, type(None), torch.dtype, torch.device})
_TENSOR_DICTS = frozenset({"_parameters", "_buffers", "_modules"})
_HOOK_DICTS = frozenset(
    k for k, v in vars(nn.Module()).items() if isinstance(v, dict) and "hook" in k
)


def _atomic_items(values: Iterable[Any]) -> bool:
    """Every item is of an atomic type (set(map(type)) runs in C: 0.3 µs for a pair)."""
    return set(map(type, values)) <= _ATOMIC


def _meta(t: Tensor) -> Tensor:
    """A tensor of t's shape and dtype with no data. From a CPU tensor empty_like is the
    fastest (1.0 µs, torch.empty 2.2 µs; a ResNet-50 copy makes 373); from a meta tensor
    it runs a Python kernel (23 µs), so torch.empty."""
    if t.is_meta:
        return torch.empty(t.shape, dtype=t.dtype, device=_META)
    return torch.empty_like(t, device=_META)


def _clone(t: Tensor) -> Tensor:
    return t.detach().clone()


def _trace(model: nn.Module, x: Tensor, modules: _Named | None = None) -> _Tracer:
    """Run `model` (ours: a copy or a fresh build, thrown away after) on x with the tracer.
    modules: model.named_modules(), where the caller has them already."""
    tracer = _Tracer(model.named_modules() if modules is None else modules, tuple(x.shape[-2:]))
    setattr(x, _TAG, _Tag((geometry.INPUT_RF, geometry.INPUT_RF)))
    try:
        with torch.no_grad(), tracer:
            model(x)
    except CnnlabError:
        raise
    except Exception as err:
        raise _TraceError(tracer._where(), err) from err
    finally:
        tracer.release()
    return tracer


class _TraceError(Exception):
    def __init__(self, where: str, err: Exception) -> None:
        super().__init__(f"{where}: {type(err).__name__}: {err}")


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _trace_module(model: nn.Module, input_size: tuple[int, ...]) -> _Tracer:
    """On a meta copy; where meta fails, a real batch-1 forward on a real copy in eval mode."""
    try:
        meta, modules = _copy_module(model, _meta)
        return _trace(meta, torch.empty((1, *input_size), device="meta"), modules)
    except CnnlabError:
        raise
    except Exception:  # no meta kernel, .item(), a CPU tensor made in forward, ...
        pass
    device, dtype = _device_and_dtype(model)
    real, modules = _copy_module(model, _clone)
    try:
        return _trace(real, torch.zeros((1, *input_size), device=device, dtype=dtype), modules)
    except _TraceError as err:
        raise CnnlabError(f"{err}; check input_size {_shape(input_size)}") from err.__cause__


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (as `timeit` does). A ResNet-50 trace makes
    ~4,000 container objects that reference counting frees when the call returns (the trace
    leaves no cycles: `_Tracer.release`). Left on, the collector walks them ~5 times a call
    (0.2 ms) and promotes the live copy to its oldest generation, which then needs a full
    collection: 130 ms in a process with torch loaded, every ~20 calls."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _input_size(input_size: Any) -> tuple[int, ...]:
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or min(size) < 1 or list(size) != list(input_size):
        raise CnnlabError(
            f"input_size must be three positive integers (C, H, W), got {input_size!r}"
        )
    return size


def summary(model_or_spec: nn.Module | Any, input_size: Iterable[int] | None = None) -> Summary:
    """Per-layer shapes, parameters, receptive field, MACs and design lints (§2, §3.2, §5.2).

    model_or_spec: any nn.Module (needs input_size), or a spec (Spec, dict, preset name,
    .yaml/.json path), whose input_size defaults to spec.input. input_size: (C, H, W) of one
    image. Nothing real is computed for a spec (it is built and traced on the meta device);
    a module is traced on a meta copy, or by a batch-1 forward on a copy where meta fails.
    Raises SpecError naming the layer whose output would be below 1×1, CnnlabError when the
    model cannot run on input_size.
    """
    with _gc_paused():  # the whole call: its result is the only thing that outlives it
        if isinstance(model_or_spec, nn.Module):
            if input_size is None:
                raise CnnlabError("summary of an nn.Module needs input_size=(C, H, W)")
            size = _input_size(input_size)
            model = model_or_spec
            tracer = _trace_module(model, size)
        else:
            from cnnlab.design.build import build
            from cnnlab.design.spec import load_spec

            if isinstance(model_or_spec, Path):
                model_or_spec = str(model_or_spec)
            spec = load_spec(model_or_spec)
            size = _input_size(spec.input if input_size is None else input_size)
            if size != tuple(spec.input):  # the same layers on another input: validate again
                spec = load_spec({**spec.to_dict(), "input": list(size)})
            with torch.device("meta"):
                model = build(spec)
            try:
                tracer = _trace(model, torch.empty((1, *size), device="meta"))
            except _TraceError as err:
                raise SpecError(f"{err}; check the input size {_shape(size)}") from err.__cause__
        rows = tuple(tracer.rows)
        return Summary(
            rows=rows,
            total_params=tracer.total_params,
            trainable_params=tracer.trainable_params,
            total_macs=sum(r.macs for r in rows),
            activation_bytes=sum(math.prod(r.output_shape) for r in rows) * BYTES_PER_VALUE,
            input_size=size,
            warnings=list(tracer.final_lints(tracer.total_params)),
        )


# --- rendering -----------------------------------------------------------------------------


def _shape(shape: Iterable[int]) -> str:
    return "×".join(str(n) for n in shape)


def _si(n: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _render(s: Summary, width: int = 100) -> str:
    """The table (rich, exported as text), totals and lints below it."""
    from rich.console import Console
    from rich.table import Table

    frozen = any(r.trainable != r.params for r in s.rows)
    table = Table(title=f"input {_shape(s.input_size)}", title_justify="left", pad_edge=True)
    table.add_column("layer", overflow="fold")
    table.add_column("kind", overflow="fold")
    table.add_column("output", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    if frozen:
        table.add_column("trainable", justify="right", no_wrap=True)
    table.add_column("RF", justify="right", no_wrap=True)
    table.add_column("jump", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    for r in s.rows:
        cells = [r.name or "(model)", r.kind, _shape(r.output_shape), f"{r.params:,}"]
        cells += [f"{r.trainable:,}"] if frozen else []
        cells += [str(r.receptive_field), str(r.jump), f"{r.macs:,}"]
        table.add_row(*cells)
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    console.print(
        f"total params {s.total_params:,} (trainable {s.trainable_params:,}) · "
        f"MACs {s.total_macs:,} ({_si(s.total_macs)}) · activations "
        f"{_si(s.activation_bytes, 'B')} per image (float32, sum of the rows' outputs)",
        highlight=False,
    )
    if s.warnings:
        console.print(f"\n{len(s.warnings)} warning(s):", highlight=False)
        for w in s.warnings:
            console.print(f"[{w.code}] layer {w.layer}: {w.message}", highlight=False, markup=False)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
