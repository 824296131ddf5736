"""One traced forward: every torch call is seen (a `TorchFunctionMode`), every tensor it makes
is tagged with what follows from its inputs' tags, and the facts of `facts.py` are recorded.

A tag carries the receptive field per axis (§3.2: `geometry.rf_step` at every conv and pool;
through branches the largest), where the height and width axes are (`axes.py`), how the
map's size follows the input's (a chain of windows, for the fixed-size lint), and what the
lints need to know of the path behind it: the last conv/linear reached through linear ops
only (§4.1), the last saturating activation (§4.2), the flatten it came from (§5.2).

Rows: one per leaf module call (dotted name, class name, output shape of one image), plus one
for a container whose output comes from its own code (``torch.cat``) rather than a child's.
A call the trace cannot follow (`LostFact`) leaves the fields after it unknown (None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnnlab import geometry
from cnnlab.design.activations import activation_of, activation_of_call
from cnnlab.design.summary import axes as ax
from cnnlab.design.summary import calls as C
from cnnlab.design.summary.facts import (
    SIZE_FREE,
    DenseFact,
    HeadFact,
    LostFact,
    RowFact,
    SquashFact,
    Trace,
    WeightFact,
    Window,
    WindowFact,
)
from cnnlab.design.summary.macs import macs_rule
from cnnlab.errors import SpecError
from cnnlab.geometry import RF

TAG = "_cnnlab_tag"


class Tag(NamedTuple):
    """What the tracer knows about one tensor (stored on it as ``_cnnlab_tag``)."""

    rf: tuple[RF, RF] | None  # receptive field along height, width; None: not followed
    axes: ax.Axes = (None, None)  # where height and width are; None: merged or reduced
    chain: Any = ()  # facts.Chain, SIZE_FREE or None (not followed)
    lost: str | None = None  # the function that lost the field
    linear: tuple[int, tuple[Window, ...]] | None = None  # WeightFact index, pools since
    squashed_by: str | None = None  # last saturating activation through linear ops only
    flat: tuple[str, tuple[int, ...], Any, Any] | None = None  # (layer, shape, chain, pool)
    pad: tuple[int, int, int, int] | None = None  # zeros an F.pad just put around the map
    last_pool: tuple[str, Window] | None = None  # the last fixed pooling window on the way
    is_row: bool = False  # already shown as some row's output


INPUT_TAG = Tag((geometry.INPUT_RF,) * 2, (2, 3))
# ops through which the lint facts of §4.2/§5.2 pass: linear in their input
_LINEAR_PATH = (
    C.COLLAPSIBLE
    | C.AVG_POOL
    | C.ADAPTIVE_AVG
    | C.RESHAPE
    | C.PERMUTE
    | C.SAME
    | C.JOIN
    | C.SPLIT
    | C.GETITEM
    | C.PAD
    | C.both("add", "sub", "mean", "add_", "sub_")
    | C.fns("__add__", "__radd__", "__iadd__", "__sub__", "__isub__", owner=C.T)
)


def global_rf(rf: RF, n: int, extent: int) -> RF:
    """A unit that pools all n positions of a map whose units have field `rf` (one axis)."""
    size = max(extent, rf.size + (n - 1) * rf.jump)
    return RF(size=size, jump=rf.jump * n, start=rf.start + (n - 1) * rf.jump / 2)


class TraceError(Exception):
    """The model's forward raised: where (layer, kind, the shape it got) and torch's words."""

    def __init__(self, where: str, err: Exception) -> None:
        super().__init__(f"{where}: {type(err).__name__}: {err}")


class Tracer(TorchFunctionMode):
    """Tags every tensor a traced forward makes; rows come from wrapped module forwards."""

    def __init__(self, modules: Iterable[tuple[str, nn.Module]], image: tuple[int, int]) -> None:
        """Prepares a model (ours: a copy or a fresh build) in one walk over its named
        `modules`: eval mode, wrapped forwards, names, parameter counts (each shared
        parameter once)."""
        super().__init__()
        self.image = image
        self.names: dict[int, str] = {}
        self.wrapped: list[nn.Module] = []
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
            # nn.Module's checks (0.6 ms for ResNet-50, with the wrapped forward below).
            object.__setattr__(m, "training", False)
            self._instrument(m, name, params, trainable)
        self.total_params = sum(p.numel() for p in unique.values())
        self.trainable_params = sum(p.numel() for p in unique.values() if p.requires_grad)
        self.stack: list[tuple[nn.Module, tuple[int, ...] | None]] = []
        self.calls: dict[str, int] = {}
        self.rows: list[RowFact] = []
        self.windows: list[WindowFact] = []
        self.weights: list[WeightFact] = []
        self.heads: list[HeadFact] = []
        self.dense: DenseFact | None = None
        self.squashes: list[SquashFact] = []
        self.lost: dict[tuple[str, str], LostFact] = {}

    def facts(self, real_forward: str | None) -> Trace:
        return Trace(
            self.image,
            tuple(self.rows),
            tuple(self.windows),
            tuple(self.weights),
            tuple(self.heads),
            self.dense,
            tuple(self.squashes),
            tuple(self.lost.values()),
            self.total_params,
            self.trainable_params,
            real_forward,
        )

    # where we are ------------------------------------------------------------------------
    @property
    def layer(self) -> str:
        """Dotted name of the innermost running module; the model itself is "(model)"."""
        return (self.names.get(id(self.stack[-1][0])) if self.stack else None) or "(model)"

    def where(self) -> str:
        """'layer 3 (Conv2d) on a 1×3×32×32 input', for error messages."""
        if not self.stack:
            return "layer (model)"
        module, shape = self.stack[-1]
        got = f" on a {'×'.join(map(str, shape))} input" if shape is not None else ""
        return f"layer {self.layer} ({type(module).__name__}){got}"

    # module calls -------------------------------------------------------------------------
    def _instrument(self, module: nn.Module, name: str, params: int, trainable: int) -> None:
        """Wrap `module.forward` (on our copy) to keep the stack of running modules and to add
        its row. Cheaper than two hooks per module: hooks send every call down nn.Module's
        slow path (3 ms of a ResNet-50 trace)."""
        forward, kind, rule = module.forward, type(module).__name__, macs_rule(type(module))
        same_shape = _same_shape_call(module)
        leaf = not module._modules

        def traced_forward(*args: Any, **kwargs: Any) -> Any:
            x = args[0] if args else next(iter(kwargs.values()), None)
            self.stack.append((module, tuple(x.shape) if isinstance(x, Tensor) else None))
            output = None
            if same_shape is not None and len(args) == 1 and not kwargs:
                output = self._same_shape(same_shape, module, args[0])
            if output is None:
                output = forward(*args, **kwargs)  # on an error the stack names the layer
            self.stack.pop()
            with torch._C.DisableTorchFunction():  # our own reads need no tracing
                self._row(module, name, kind, params, trainable, rule, leaf, output)
            return output

        object.__setattr__(module, "forward", traced_forward)  # as for `training` above
        self.wrapped.append(module)

    def release(self) -> None:
        """Unwrap the forwards: a wrapper and its module refer to each other, and such cycles
        wait for the garbage collector; without them the copy is freed when the call returns."""
        for module in self.wrapped:
            del module.__dict__["forward"]
        self.wrapped.clear()

    def _same_shape(self, func: Callable, module: nn.Module, x: Any) -> Tensor | None:
        """A shape-keeping layer on a meta input: its output, tagged as `func` would tag it,
        without running its forward (BatchNorm and ReLU are 100 of ResNet-50's 160 calls).
        None where the layer must run: a real input, or one BatchNorm2d would refuse."""
        with torch._C.DisableTorchFunction():
            if not isinstance(x, Tensor) or not x.is_meta:
                return None
            if isinstance(module, nn.BatchNorm2d) and (
                x.dim() != 4 or x.shape[1] != module.num_features
            ):
                return None
            # vars(): a getattr that misses goes through nn.Module.__getattr__ (1.2 µs, 0.15)
            out = x if vars(module).get("inplace", False) else C.new_meta(x)
            tag = getattr(x, TAG, None)
            if tag is not None:
                setattr(out, TAG, self._elementwise(func, (), [(x, tag)], out))
        return out

    def _row(self, module, name, kind, params, trainable, rule, leaf, output) -> None:
        """Adds the call's row: every leaf call; a container only where its output is its
        own (not a child's row)."""
        out = _first_tensor(output)
        if out is None:
            return
        tag = getattr(out, TAG, None)
        if not leaf and (tag is None or tag.is_row):
            return
        rf = None
        if tag is not None and tag.rf is not None:
            h, w = tag.rf
            rf = w if w.size > h.size else h  # the larger axis (ties: height)
        macs = rule(module, out) if rule is not None else (params if leaf else 0)
        call = self.calls[name] = self.calls.get(name, 0) + 1
        shape = tuple(out.shape[1:])
        lost = tag.lost if tag is not None else None
        self.rows.append(RowFact(name, call, kind, shape, params, trainable, rf, macs, lost))
        if tag is not None:
            setattr(out, TAG, tag._replace(is_row=True))

    # every torch call ---------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        w = C.window(func, args, kwargs)
        if w is None:
            out = C.fast_call(func, args, kwargs)
        else:
            x = args[0] if args else kwargs["input"]
            self._check_window(x, w)
            out = C.meta_window(func, args, kwargs, x, w)
            if out is None:
                out = func(*args, **kwargs)
        tagged = _tagged(args, kwargs)
        if tagged:
            self._tag_outputs(func, args, kwargs, out, tagged, w)
        return out

    def _check_window(self, x: Tensor, w: Window) -> None:
        """An output below 1×1 is an error naming the layer."""
        if w.same or x.dim() < 2:
            return
        try:
            C.window_out(tuple(x.shape[-2:]), w)
        except SpecError as err:
            size = "×".join(map(str, x.shape[-2:]))
            raise SpecError(f"{self.where()}: on a {size} map, {err}") from None

    def _tag_outputs(self, func, args, kwargs, out, tagged, w) -> None:
        """Tags each tensor of `out` (chunk, split and unbind return several)."""
        if isinstance(out, Tensor):
            setattr(out, TAG, self._tag(func, args, kwargs, out, tagged, w))
        elif isinstance(out, (tuple, list)):
            if func in C.MAX_POOL or func in C.fns("adaptive_max_pool2d_with_indices"):
                out = out[:1]  # (values, indices)
            for t in out:
                if isinstance(t, Tensor):
                    setattr(t, TAG, self._tag(func, args, kwargs, t, tagged, w))

    def _tag(self, func, args, kwargs, out: Tensor, tagged: list, w: Window | None) -> Tag:
        """The tag of `out`, one of func's outputs, from its tagged inputs."""
        src, tag = tagged[0]
        if w is not None:
            return self._window_tag(func, args, kwargs, src, tag, w)
        if func in C.LINEAR:
            return self._linear_tag(args, kwargs, src, tag, out)
        if len(tagged) == 1 and tag.rf is None:
            return tag._replace(is_row=False, pad=None)  # lost stays lost, named once
        if func in C.PAD:
            return self._pad_tag(args, kwargs, src, tag)
        if func in C.ADAPTIVE:
            return self._adaptive_tag(func, src, tag, out)
        if func in C.RESHAPE:
            return self._reshape_tag(src, tag, out)
        moved = _moved(func, args, kwargs, src, tag, out)
        if moved is not None:
            return self._keep_facts(func, tag, moved)
        if func in C.JOIN or func in C.STACK:
            return self._join_tag(func, args, kwargs, tagged, out)
        if func in C.REDUCE:
            return self._reduce_tag(func, args, kwargs, src, tag, out)
        if func in C.SAME or func in C.NORM_LIKE or C.pointwise(func) or _activation(func, args):
            return self._elementwise(func, args, tagged, out, kwargs)
        name = getattr(func, "__qualname__", repr(func))
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)

    # the roles ------------------------------------------------------------------------------
    def _keep_facts(self, func, tag: Tag, new: Tag) -> Tag:
        """new, with the lint facts of `tag` kept where func is linear in its input."""
        if func in _LINEAR_PATH:
            return new
        return new._replace(linear=None, squashed_by=None, flat=None)

    def _window_tag(self, func, args, kwargs, x: Tensor, tag: Tag, w: Window) -> Tag:
        """A conv or pool: the field grows, the chain gets the window, the facts are noted."""
        layer = self.layer
        size = tuple(x.shape[-2:])
        if tag.pad is not None and w.padding == (0, 0):  # the real map inside F.pad's zeros
            p = tag.pad
            size = (size[0] - p[0] - p[1], size[1] - p[2] - p[3])
        self.windows.append(WindowFact(layer, w, size, tag.pad if w.padding == (0, 0) else None))
        on_map = tag.axes == (x.dim() - 2, x.dim() - 1)
        rf = C.window_rf(tag.rf, w) if on_map and tag.rf is not None else None
        chain = (w, tag.chain) if isinstance(tag.chain, tuple) and on_map else tag.chain
        if rf is None and tag.rf is not None:
            return self._lose(func, tag)
        if func in C.CONV:
            linear = (self._weight("conv", args, kwargs, tag, w), ())
            return Tag(rf, tag.axes, chain, tag.lost, linear, last_pool=tag.last_pool)
        squashed, linear, flat = None, None, None
        if func in C.AVG_POOL:
            squashed, flat = tag.squashed_by, tag.flat
            linear = None if tag.linear is None else (tag.linear[0], (*tag.linear[1], w))
        return Tag(rf, tag.axes, chain, tag.lost, linear, squashed, flat, None, (layer, w))

    def _weight(self, kind: str, args, kwargs, tag: Tag, w: Window | None) -> int:
        """Records a conv or linear call (WeightFact); returns its index."""
        weight, bias = C.arg(args, kwargs, 1, "weight"), C.arg(args, kwargs, 2, "bias")
        groups = C.arg(args, kwargs, 6, "groups", 1) if kind == "conv" else 1
        out, in_ = weight.shape[0], weight.shape[1] * groups
        if w is None:
            kernel, stride = (1, 1), (1, 1)
        else:
            kernel = tuple(d * (k - 1) + 1 for k, d in zip(w.kernel, w.dilation, strict=True))
            stride = w.stride
        before, pools = tag.linear if tag.linear is not None else (None, ())
        bias_n = 0 if bias is None else bias.numel()
        fact = WeightFact(
            self.layer, kind, in_, out, kernel, stride, groups, weight.numel(), bias_n, before,
            pools,
        )  # fmt: skip
        self.weights.append(fact)
        if tag.squashed_by is not None:
            self.squashes.append(SquashFact(tag.squashed_by, self.layer))
        return len(self.weights) - 1

    def _linear_tag(self, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """F.linear mixes the last axis: along a spatial axis the field becomes the whole
        axis; on channels (channels-last maps, vectors) it stays."""
        index = self._weight("linear", args, kwargs, tag, None)
        if tag.flat is not None and self.dense is None:
            n = sum(C.arg(args, kwargs, i, k).numel() for i, k in ((1, "weight"), (2, "bias"))
                    if C.arg(args, kwargs, i, k) is not None)  # fmt: skip
            layer, shape, chain, pool = tag.flat
            self.dense = DenseFact(self.layer, layer, shape, chain, n, pool)
        rf, last = tag.rf, x.dim() - 1
        if last in tag.axes and rf is not None:
            i = tag.axes.index(last)
            rf = tuple(
                global_rf(r, x.shape[last], self.image[i]) if j == i else r
                for j, r in enumerate(rf)
            )
        return Tag(rf, tag.axes, tag.chain, tag.lost, (index, ()), last_pool=tag.last_pool)

    def _pad_tag(self, args, kwargs, x: Tensor, tag: Tag) -> Tag:
        """Zeros around the map: pixel 0 of the output is pixel -top (-left) of the input."""
        pad = C.zero_pad(args, kwargs)
        if pad is None or tag.axes != (x.dim() - 2, x.dim() - 1):
            return self._keep_facts(C.fns("pad"), tag, tag._replace(chain=None, is_row=False))
        rf = tuple(
            RF(r.size, r.jump, r.start - p * r.jump) for r, p in zip(tag.rf, pad[::2], strict=True)
        )
        w = Window((1, 1), (1, 1), (pad[0], pad[2]), after=(pad[1], pad[3]))
        chain = (w, tag.chain) if isinstance(tag.chain, tuple) else tag.chain
        return tag._replace(rf=rf, chain=chain, pad=pad, is_row=False)

    def _adaptive_tag(self, func, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """Adaptive pooling: a plain pool with k = s = in/out where the output divides the
        input, else (and to 1×1) each unit sees the whole map. The size no longer follows
        the input's."""
        in_map, out_map = tuple(x.shape[-2:]), tuple(out.shape[-2:])
        divides = all(i % o == 0 for i, o in zip(in_map, out_map, strict=True))
        linear = None
        if divides and out_map != (1, 1):
            k = tuple(i // o for i, o in zip(in_map, out_map, strict=True))
            w = Window(k, k, (0, 0))
            rf = C.window_rf(tag.rf, w)
        else:
            w = Window(in_map, in_map, (0, 0))  # as a pool over the whole map
            rf = self._global(x, tag)
        if func in C.ADAPTIVE_AVG and tag.linear is not None:
            linear = (tag.linear[0], (*tag.linear[1], w))
        squashed = tag.squashed_by if func in C.ADAPTIVE_AVG else None
        return Tag(rf, tag.axes, SIZE_FREE, None, linear, squashed, None, None, None)

    def _global(self, x: Tensor, tag: Tag) -> tuple[RF, RF]:
        """Each unit sees the whole map: the head of the net (§3.2)."""
        in_map = tuple(x.shape[-2:])
        if in_map != (1, 1):
            self.heads.append(HeadFact(self.layer, tag.rf, tuple(x.shape[1:])))
        return tuple(global_rf(r, in_map[i], self.image[i]) for i, r in enumerate(tag.rf))

    def _reshape_tag(self, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """view/reshape/flatten: an axis kept by position keeps its field; axes merged
        into one see the whole map (flatten, §5.2: the dense head's input)."""
        axes = ax.reshape(x.shape, out.shape, tag.axes)
        flat = tag.flat
        if None in axes and axes != tag.axes:  # a spatial axis merged away
            merged = [i for i, (a, b) in enumerate(zip(tag.axes, axes, strict=True)) if a != b]
            if tag.axes == (x.dim() - 2, x.dim() - 1) and len(merged) == 2:
                raw = all(r.size == 1 for r in tag.rf)  # the image itself: an MLP
                rf = self._global(x, tag)
                shape = tuple(x.shape[1:])
                flat = None if raw else (self.layer, shape, tag.chain, tag.last_pool)
            else:
                rf = tuple(
                    global_rf(r, x.shape[tag.axes[i]], self.image[i]) if i in merged else r
                    for i, r in enumerate(tag.rf)
                )
            linear = tag.linear if tag.axes == (None, None) else None
            return tag._replace(rf=rf, axes=axes, flat=flat, linear=linear, pad=None, is_row=False)
        return tag._replace(axes=axes, pad=None, is_row=False)

    def _join_tag(self, func, args, kwargs, tagged: list, out: Tensor) -> Tag:
        """cat/stack: the largest field of the inputs; stack adds a dimension."""
        tag = self._elementwise(func, args, tagged, out, kwargs, align=False)
        if func in C.STACK:
            dim = C.arg(args, kwargs, 1, "dim", 0)
            tag = tag._replace(axes=ax.inserted(dim, out.dim(), tagged[0][1].axes))
        return tag

    def _reduce_tag(self, func, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """mean/sum/max/softmax over dims: along a spatial one, each value sees it all."""
        dims = ax.reduced_dims(C.arg(args, kwargs, 1, "dim"), x.dim())
        rf, axes = list(tag.rf), tag.axes
        spatial = [i for i, a in enumerate(tag.axes) if a in dims]
        if len(spatial) == 2:
            rf = list(self._global(x, tag))
        for i in spatial if len(spatial) == 1 else ():
            rf[i] = global_rf(rf[i], x.shape[tag.axes[i]], self.image[i])
        if func in C.REDUCES_SHAPE and out.dim() < x.dim():
            for ndim, d in enumerate(reversed(dims)):  # highest first: lower ones stay put
                axes, _ = ax.removed(d, x.dim() - ndim, axes)
        chain = SIZE_FREE if spatial else tag.chain
        new = tag._replace(rf=tuple(rf), axes=axes, chain=chain, pad=None, is_row=False)
        return self._keep_facts(func, tag, new if spatial else new._replace(linear=None))

    def _elementwise(self, func, args, tagged: list, out: Tensor, kwargs=None, align=True) -> Tag:
        """Each output value from the inputs' values at its position (broadcast from the
        right): the largest field of the inputs (ties: the first)."""
        if len(tagged) == 1:
            src, tag = tagged[0]
            axes = ax.aligned(src.dim(), out.dim(), tag.axes) if align else tag.axes
            act = _activation(func, args, kwargs)
            squashed = self.layer if act is not None and act.saturates is not None else None
            new = tag._replace(axes=axes, pad=None, is_row=False)
            if squashed is not None:
                return new._replace(linear=None, flat=None, squashed_by=squashed)
            keep = func in _LINEAR_PATH or func in C.COLLAPSIBLE
            return new if keep else new._replace(linear=None, squashed_by=None, flat=None)
        tags = [t for _, t in tagged]
        if any(t.rf is None for t in tags):
            lost = next(t for t in tags if t.rf is None)
            return lost._replace(is_row=False)
        src, tag = max(tagged, key=lambda p: p[1].rf[0].size * p[1].rf[1].size)
        axes = ax.aligned(src.dim(), out.dim(), tag.axes) if align else tag.axes
        keep = func in _LINEAR_PATH
        chain = next((t.chain for t in tags if isinstance(t.chain, tuple)), tag.chain)
        return Tag(
            tag.rf,
            axes,
            chain,
            None,
            None,  # two branches: one linear map cannot replace the pair (§4.1)
            _first(t.squashed_by for t in tags) if keep else None,
            _first(t.flat for t in tags) if keep else None,
            None,
            _first(t.last_pool for t in tags),
        )

    def _lose(self, func, tag: Tag) -> Tag:
        name = getattr(func, "__qualname__", repr(func))
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)


# --- helpers ----------------------------------------------------------------------------------


def _tagged(args: tuple, kwargs: dict) -> list[tuple[Tensor, Tag]]:
    """(tensor, tag) of every input that carries a tag, lists (torch.cat) included."""
    found = []
    for a in (*args, *kwargs.values()) if kwargs else args:
        for t in a if type(a) in (list, tuple) else (a,):
            tag = getattr(t, TAG, None)
            if tag is not None:
                found.append((t, tag))
    return found


def _moved(func, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag | None:
    """The tag of a permute, split or index output (values moved, not computed); None for
    other calls."""
    if func in C.PERMUTE:
        axes = _permuted(func, args, kwargs, x.dim(), tag.axes)
        return tag._replace(axes=axes, pad=None, is_row=False)
    if func in C.SPLIT:
        at = 2 if func.__name__ in ("chunk", "split", "tensor_split", "split_with_sizes") else 1
        dim = C.arg(args, kwargs, at, "dim", 0)
        axes = tag.axes
        if out.dim() < x.dim():  # unbind, select
            axes, _ = ax.removed(dim, x.dim(), axes)
        chain = None if ax._norm(dim, x.dim()) in tag.axes else tag.chain
        return tag._replace(axes=axes, chain=chain, pad=None, is_row=False)
    if func in C.GETITEM:
        found = ax.index(args[1], x.shape, tag.axes)
        if found is None:
            return None
        axes, steps = found
        rf, chain = tag.rf, tag.chain
        if steps != (1, 1) and rf is not None:
            rf = tuple(RF(r.size, r.jump * s, r.start) for r, s in zip(rf, steps, strict=True))
        if tuple(out.shape[a] for a in axes if a is not None) != tuple(
            x.shape[a] for a in tag.axes if a is not None
        ):
            chain = None  # a crop: the size no longer follows the windows
        return tag._replace(rf=rf, axes=axes, chain=chain, pad=None, is_row=False)
    return None


def _permuted(func, args, kwargs, ndim: int, axes: ax.Axes) -> ax.Axes:
    name = func.__name__
    if name == "permute":
        order = args[1:] if len(args) > 2 else C.arg(args, kwargs, 1, "dims")
        return ax.permute(list(order), axes)
    if name in ("movedim", "moveaxis"):
        return ax.movedim(C.arg(args, kwargs, 1, "source"), C.arg(args, kwargs, 2, "destination"),
                          ndim, axes)  # fmt: skip
    if name in ("t", "T") or ndim < 2:
        return ax.swap(0, 1, ndim, axes) if ndim == 2 else axes
    if name == "mT":
        return ax.swap(-2, -1, ndim, axes)
    return ax.swap(C.arg(args, kwargs, 1, "dim0"), C.arg(args, kwargs, 2, "dim1"), ndim, axes)


def _activation(func, args, kwargs=None):
    try:
        return activation_of_call(func, args, kwargs)
    except (TypeError, IndexError):
        return None


def _same_shape_call(module: nn.Module) -> Callable | None:
    """The call a shape-keeping module of exactly this type makes (its forward is torch's,
    not overridden): BatchNorm2d, dropout, the activations of the table."""
    kind = type(module)
    if kind is nn.BatchNorm2d:
        return torch.nn.functional.batch_norm
    if kind in (nn.Dropout, nn.Dropout2d):
        return torch.nn.functional.dropout
    act = activation_of(module)
    if act is not None and kind in act.modules and kind is not nn.PReLU:
        return act.functions[0]
    return None


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return next((t for t in map(_first_tensor, output) if t is not None), None)
    if hasattr(output, "to_tuple"):  # Hugging Face's ModelOutput
        return _first_tensor(output.to_tuple())
    return None
