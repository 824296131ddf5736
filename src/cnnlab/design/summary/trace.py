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
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

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
from cnnlab.design.summary.tags import (
    LINEAR_PATH,
    TAG,
    Tag,
    activation,
    combine,
    first,
    first_tensor,
    global_rf,
    moved,
    same_shape_call,
    tagged_inputs,
)
from cnnlab.errors import SpecError
from cnnlab.geometry import RF

_PROPERTY = type(Tensor.shape.__get__)  # how a property read reaches __torch_function__


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
        same_shape = same_shape_call(module)
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
        out = first_tensor(output)
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
        if type(func) is _PROPERTY:  # x.shape, x.device (a fifth of all calls): no tensor
            out = func(*args, **kwargs)
            if not isinstance(out, Tensor):
                return out
            w = None
        else:
            w = C.window(func, args, kwargs)
            if w is None:
                out = C.fast_call(func, args, kwargs)
            else:
                x = args[0] if args else kwargs["input"]
                self._check_window(x, w)
                out = C.meta_window(func, args, kwargs, x, w)
                if out is None:
                    out = func(*args, **kwargs)
        tagged = tagged_inputs(args, kwargs)
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
            if func in C.WITH_INDICES:
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
        new = moved(func, args, kwargs, src, tag, out)
        if new is not None:
            return self._keep_facts(func, tag, new)
        if func in C.JOIN or func in C.STACK:
            return self._join_tag(func, args, kwargs, tagged, out)
        if func in C.REDUCE:
            return self._reduce_tag(func, args, kwargs, src, tag, out)
        if func in C.SAME or func in C.NORM_LIKE or C.pointwise(func) or activation(func, args):
            return self._elementwise(func, args, tagged, out, kwargs)
        name = getattr(func, "__qualname__", repr(func))
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)

    # the roles ------------------------------------------------------------------------------
    def _keep_facts(self, func, tag: Tag, new: Tag) -> Tag:
        """new, with the lint facts of `tag` kept where func is linear in its input."""
        if func in LINEAR_PATH:
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
        if w.ceil_mode and on_map and all(C.covers(x.shape[-2 + i], w, i) for i in (0, 1)):
            rf = self._global(x, tag) if tag.rf is not None else None  # a global pool
            chain = SIZE_FREE
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
            n = self._lengths(x, tag)
            rf = tuple(
                global_rf(r, n[i], self.image[i]) if a == last else r
                for i, (a, r) in enumerate(zip(tag.axes, rf, strict=True))
            )
        return Tag(rf, tag.axes, tag.chain, tag.lost, (index, ()), last_pool=tag.last_pool)

    def _pad_tag(self, args, kwargs, x: Tensor, tag: Tag) -> Tag:
        """Zeros around the map: pixel 0 of the output is pixel -top (-left) of the input."""
        pad = C.zero_pad(args, kwargs)
        if pad is None or tag.axes != (x.dim() - 2, x.dim() - 1):
            return self._keep_facts(next(iter(C.PAD)), tag, tag._replace(chain=None, is_row=False))
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

    def _lengths(self, x: Tensor, tag: Tag) -> tuple[int, int]:
        """The map's height and width in x (merged into one axis: from the image and the
        units' spacing)."""
        h, w = tag.axes
        if h is not None and w is not None and h != w:
            return x.shape[h], x.shape[w]
        return tuple(-(-n // r.jump) for n, r in zip(self.image, tag.rf, strict=True))

    def _global(self, x: Tensor, tag: Tag) -> tuple[RF, RF]:
        """Each unit sees the whole map: the head of the net (§3.2)."""
        in_map = self._lengths(x, tag)
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
            if len(merged) == 2:
                raw = all(r.size == 1 for r in tag.rf)  # the image itself: an MLP
                rf = self._global(x, tag)
                shape = tuple(x.shape[1:])
                flat = None if raw else (self.layer, shape, tag.chain, tag.last_pool)
            else:
                n = self._lengths(x, tag)
                rf = tuple(
                    global_rf(r, n[i], self.image[i]) if i in merged else r
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
            rf[i] = global_rf(rf[i], self._lengths(x, tag)[i], self.image[i])
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
            act = activation(func, args, kwargs)
            squashed = self.layer if act is not None and act.saturates is not None else None
            new = tag._replace(axes=axes, pad=None, is_row=False)
            if squashed is not None:
                return new._replace(linear=None, flat=None, squashed_by=squashed)
            keep = func in LINEAR_PATH or func in C.COLLAPSIBLE
            return new if keep else new._replace(linear=None, squashed_by=None, flat=None)
        tags = [t for _, t in tagged]
        if any(t.rf is None for t in tags):
            lost = next(t for t in tags if t.rf is None)
            return lost._replace(is_row=False)
        rf, axes, tag = combine(tagged, out, align)
        keep = func in LINEAR_PATH
        chain = next((t.chain for t in tags if isinstance(t.chain, tuple)), tag.chain)
        return Tag(
            rf,
            axes,
            chain,
            None,
            None,  # two branches: one linear map cannot replace the pair (§4.1)
            first(t.squashed_by for t in tags) if keep else None,
            first(t.flat for t in tags) if keep else None,
            None,
            first(t.last_pool for t in tags),
        )

    def _lose(self, func, tag: Tag) -> Tag:
        name = getattr(func, "__qualname__", repr(func))
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)
