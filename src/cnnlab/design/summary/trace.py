"""One traced forward: every torch call is seen (a `TorchFunctionMode`), every tensor it makes
is tagged with what follows from its inputs' tags, and the facts of `facts.py` are recorded.

A tag carries the receptive field per axis (§3.2: geometry.rf_step's formula, as
`calls.field_step`, at every conv and pool; through branches the largest), where the height
and width axes are (`axes.py`), how the map's size follows the input's (a chain of windows,
for the fixed-size lint), and what the lints need to know of the path behind it: the last
conv/linear reached through linear ops only (§4.1), the last saturating activation (§4.2),
the flatten it came from (§5.2).

The tag rules per role live in `roles.py`; the tracer sees the calls and keeps the facts.

Rows: one per leaf module call (dotted name, class name, output shape of one image), plus one
for a container whose output comes from its own code (``torch.cat``) rather than a child's.
A call the trace cannot follow (`LostFact`) leaves the fields after it unknown (None).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from cnnlab.design.summary import calls as C
from cnnlab.design.summary import shapes as S
from cnnlab.design.summary.bounded import bounded_output
from cnnlab.design.summary.constants import FACTORIES, Constants
from cnnlab.design.summary.copying import compiled_inner, meta, plain_name, shares
from cnnlab.design.summary.facts import (
    DenseFact,
    HeadFact,
    LostFact,
    OutputFact,
    RowFact,
    SquashFact,
    Trace,
    WeightFact,
    Window,
    WindowFact,
    record,
)
from cnnlab.design.summary.macs import OUT_PROJ, attention_macs, keys_noted, uncalled_rows
from cnnlab.design.summary.rearrange import RESHAPED, reshaped
from cnnlab.design.summary.refusals import CHECKS, Refused, refusal
from cnnlab.design.summary.roles import Roles, call_name
from cnnlab.design.summary.shortcuts import Shortcuts
from cnnlab.design.summary.tags import (
    NO_PIXEL,
    PROBABILITIES,
    ROW,
    TAG,
    first_tensor,
    moved,
    retag,
    tagged_inputs,
)
from cnnlab.design.summary.where import Where
from cnnlab.errors import SpecError

_ENDS = C.ENDS
_PROPERTY = type(Tensor.shape.__get__)  # how a property read reaches __torch_function__
# The forwards of torch's containers: nn.Sequential's calls its children in turn (its output
# is always a child's), ModuleList's and ModuleDict's is no forward at all. Left unwrapped
# (GhostNet has 98 Sequentials); an empty Sequential still gets its row, as a leaf.
_PLAIN_CONTAINERS = frozenset({nn.Sequential.forward, nn.Module.forward})
_VIEWS = C.VIEWS - set(CHECKS)  # (none of them is checked: `Tracer._view`)
_SEQUENCES = (list, tuple)


class TraceError(Exception):
    """The model's forward raised: where (layer, kind, the shape it got) and torch's words."""

    def __init__(self, where: str, err: Exception, fix: str | None = None) -> None:
        super().__init__(f"{where}: {type(err).__name__}: {err}")
        self.fix = fix  # what input size would run, where the trace can tell (`input_fix`)


class Tracer(Roles, Shortcuts, Constants, Where, TorchFunctionMode):
    """Tags every tensor a traced forward makes; rows come from wrapped module forwards."""

    def __init__(
        self, image: tuple[int, int], dtype: torch.dtype = torch.float32,
        training: bool = False, real: bool = False,
    ) -> None:  # fmt: skip
        """A tracer for a model on an image of (H, W) `image` and input `dtype`, its modules
        in eval mode unless `training`; `prepare` each of them before the forward; `real`:
        for a forward on real tensors, which needs no constants (`constants.py`).
        originals: the user's tensors a copy shares, and the constants, by id (`copying.py`
        fills it); a torch call gets their meta twins instead (`meta_args`)."""
        super().__init__()
        self.image, self.dtype, self.training = image, dtype, training
        self.originals: dict[int, Tensor] = {}
        self.constants: set[int] | None = None if real else set()
        self.twins: dict[int, Tensor] = {}
        self.wrapped: list[dict] = []  # the attributes of each prepared module
        self.types: dict[type, tuple] = {}  # what `_type` found, once per type and trace
        self.judged: dict[Any, str | None] = {}  # `_arguments_refused`, per type and values
        self.seen: set[int] = set()  # each shared parameter counted once in the totals
        self.weight_code: tuple[str, ...] = ()  # names under a layer's parametrizations
        self.total_params = self.trainable_params = 0
        self.stack: list[tuple[nn.Module, Any, str]] = []  # (module, its input, its name)
        self.calls: dict[str, int] = {}
        self.rows: list[RowFact] = []
        self.windows: list[WindowFact] = []
        self.weights: list[WeightFact] = []
        self.heads: list[HeadFact] = []
        self.dense: DenseFact | None = None
        self.squashes: list[SquashFact] = []
        self.lost: dict[tuple[str, str], LostFact] = {}
        self.shared: set[int] = set()  # weight layers whose output two calls read (`_use`)
        self.probabilities: OutputFact | None = None  # a softmax made the output (`ended`)
        self.last: nn.Module | None = None  # the module of the last row (`ended`)
        self.map_out = False  # the output is a map (`ended`, facts.Trace.map_out)
        self.batch_stats: list[str] = []  # BatchNorms without running statistics (`prepare`)
        self.uncalled: list[tuple[str, tuple[int, int]]] = []  # attentions' out_proj (`prepare`)
        self.unbatched: list[tuple[int, tuple[int, ...]]] = []  # (row, torch's shape) (`_row`)

    def facts(self, real_forward: str | None) -> Trace:
        rows = uncalled_rows(self.rows, self.uncalled) if self.uncalled else self.rows
        found = map(tuple, (rows, self.windows, self.weights, self.heads))
        return Trace(self.image, *found, self.dense, tuple(self.squashes),
                     tuple(self.lost.values()), self.total_params, self.trainable_params,
                     real_forward, frozenset(self.shared), self.probabilities,
                     self.map_out, tuple(self.batch_stats), tuple(self.unbatched))  # fmt: skip

    # module calls -------------------------------------------------------------------------
    def prepare(self, name: str, module: nn.Module, state: dict[str, Any]) -> None:
        """Readies one module of the model (ours: a copy or a fresh build) for the trace:
        counts its parameters (each shared one once in the totals), notes a BatchNorm
        without running statistics, sets eval mode (batch
        norm on its running statistics; training mode if the tracer's is) and wraps its
        forward, all in `state`, its attribute dict (vars(module)), which skips nn.Module's
        __setattr__. A copy's modules are prepared in the copy's own pass over them.
        `name`: as model.named_modules() names it; under a compiled child without
        `_orig_mod` (`copying.plain_name`, the rule the commands that open a run follow)."""
        if "_orig_mod" in name:  # under a torch.compile'd child: named as in the plain model
            name = plain_name(name)
        params, trainable = self._count(state["_parameters"])  # the module's own
        coded = state["_modules"].get("parametrizations") if state["_modules"] else None
        if isinstance(coded, nn.ModuleDict) and parametrize.is_parametrized(module):
            # weight_norm, spectral_norm: the parameters its weight is computed from are the
            # layer's; the modules computing it run on weights, not on the image: no rows
            self.weight_code += (f"{name}.parametrizations" if name else "parametrizations",)
            more = self._count(dict(coded.named_parameters(remove_duplicate=False)))
            params, trainable = params + more[0], trainable + more[1]
        if type(module) is OUT_PROJ:  # an attention's: its parent's row carries it if not called
            self.uncalled.append((name, (params, trainable)))
        state["training"] = self.training
        buffers = state["_buffers"]  # (an InstanceNorm's is None too: no batch norm)
        if buffers and buffers.get("running_mean", 0) is None and isinstance(module, _BatchNorm):
            self.batch_stats.append(name)
        if name.startswith(self.weight_code):
            return
        if state["_modules"] and type(module).forward in _PLAIN_CONTAINERS:
            self._straight(module, name, state)
            return
        self._instrument(module, name, params, trainable, state)

    def _count(self, parameters: dict[str, Any] | None) -> tuple[int, int]:
        """(parameters, trainable ones) of `parameters`; each counted once in the totals."""
        params = trainable = 0
        for p in parameters.values() if parameters else ():
            if p is not None:
                n, grad = p.numel(), p.requires_grad
                params += n
                trainable += n if grad else 0
                if id(p) not in self.seen:
                    self.seen.add(id(p))
                    self.total_params += n
                    self.trainable_params += n if grad else 0
        return params, trainable

    def _straight(self, module: nn.Module, name: str, state: dict[str, Any]) -> None:
        """A plain container: no row of its own, its children name themselves; called
        straight, as a wrapper is, past nn.Module.__call__'s hooks (global ones too: a copy
        runs no hook). It is on the stack while it runs, so an error of the call itself (a
        ModuleList called, a Sequential given two inputs) names it and the shape it got.
        A torch.compile'd child (an OptimizedModule, no forward of its own) calls the module
        it wraps (the compiled forward would run where no Python sees its calls), whose rows
        are named as the plain model's (`features.0`, not `features._orig_mod.0`: `prepare`)."""
        forward, stack = module.forward, self.stack
        inner = compiled_inner(module, state)
        if inner is not None:  # torch.compile's wrapper: its inner module's own forward
            forward = inner

        def straight(*args: Any, **kwargs: Any) -> Any:
            x = args[0] if args else next(iter(kwargs.values()), None)
            stack.append((module, x, name))
            output = forward(*args, **kwargs)
            stack.pop()
            return output

        state["forward"] = state["_compiled_call_impl"] = straight
        self.wrapped.append(state)

    def _instrument(self, module, name: str, params: int, trainable: int, state: dict) -> None:
        """Wrap the module's forward to keep the stack of running modules and add its row
        (two hooks a module would send every call down nn.Module's slow path: 3 ms of a
        ResNet-50 trace); also its `_compiled_call_impl`, which nn.Module.__call__ calls
        straight away (a copy has no hooks). The stack holds the input, not its shape (x.shape
        here would go through the mode: 1 µs a call)."""
        forward = module.forward
        kind, rule, shortcut = self._maker(module, state)
        if rule is attention_macs:  # an nn.MultiheadAttention: its key length, for its MACs
            forward = keys_noted(forward, state)
        leaf = not state["_modules"] or list(state["_modules"]) == ["parametrizations"]

        def traced_forward(*args: Any, **kwargs: Any) -> Any:
            x = args[0] if args else next(iter(kwargs.values()), None)
            self.stack.append((module, x, name))  # on an error the stack names the layer
            if shortcut is not None and len(args) == 1 and not kwargs:
                with torch._C.DisableTorchFunction():  # our own reads need no tracing
                    output = shortcut(module, x)
                    if output is not None:
                        self.stack.pop()
                        self._row(module, name, kind, params, trainable, rule, leaf, output)
                        return output
            output = forward(*args, **kwargs)
            self.stack.pop()
            with torch._C.DisableTorchFunction():
                self._row(module, name, kind, params, trainable, rule, leaf, output)
            return output

        state["forward"] = state["_compiled_call_impl"] = traced_forward
        self.wrapped.append(state)

    def release(self) -> None:
        """Unwrap the forwards: a wrapper and its module refer to each other, and such cycles
        wait for the garbage collector; without them the copy is freed when the call returns."""
        for state in self.wrapped:
            del state["forward"], state["_compiled_call_impl"]
        self.wrapped.clear()
        self.types.clear()  # its shortcuts are bound to the tracer
        self.judged.clear()

    def _row(self, module, name, kind, params, trainable, rule, leaf, output) -> None:
        """Adds the call's row: every leaf call; a container's where its output is its own."""
        out = output if type(output) is Tensor else first_tensor(output)
        if out is None:
            return
        tag = getattr(out, TAG, None)
        if not leaf and (tag is None or getattr(out, ROW, False)):
            return
        rf = NO_PIXEL if tag is None else None  # of weights and constants (position ids) alone
        if tag is not None and tag.rf is not None:
            h, w = tag.rf
            rf = w if w.size > h.size else h  # the larger axis (ties: height)
        macs = rule(module, out) if rule is not None else (params if leaf else 0)
        call = self.calls[name] = self.calls.get(name, 0) + 1
        shape = tuple((s := out.shape)[1:])
        if s and s[0] != 1:  # the batch may not be axis 0: (T, B, F) (`batch.py`)
            self.unbatched.append((len(self.rows), tuple(s)))
        lost = tag.lost if tag is not None else None
        self.rows.append(
            record(RowFact, (name, call, kind, shape, params, trainable, rf, macs, lost))
        )
        self.last = module
        if tag is not None:
            setattr(out, ROW, True)
        if type(module) in C.PROBABILITY_MODULES:  # nn.Sigmoid's output made without its call
            setattr(out, PROBABILITIES, (name or "(model)", kind, True))

    def ended(self, output: Any) -> None:
        """The model returned `output`: where a softmax or sigmoid made it (or a reshape of one),
        not changed in place since, `probabilities` says which; only a tensor (of a tuple or
        dict a loss reads the caller's choice; a logits entry beside probabilities is no
        fault). Else scores out of a tanh, a tuple's first too (`bounded.bounded_output`).
        Whether that first tensor is a map of height and width (`map_out`)."""
        first = first_tensor(output)
        tag = getattr(first, TAG, None)
        if tag is not None and None not in tag.axes and tag.axes[0] != tag.axes[1]:
            self.map_out = first.shape[tag.axes[0]] * first.shape[tag.axes[1]] > 1
        made = getattr(output, PROBABILITIES, None) if isinstance(output, Tensor) else None
        if made is None:
            self.probabilities = bounded_output(output, self.rows, self.last)
        else:  # classes: cross-entropy's axis 1, of (B, K) or a (B, K, H, W) map
            tag = getattr(output, TAG, None)
            is_map = output.dim() == 4 and tag is not None and tag.axes == (2, 3)
            classes = output.shape[1] if output.dim() == 2 or is_map else None
            values = math.prod(output.shape[1:]) if output.dim() >= 1 else None
            self.probabilities = OutputFact(*made, classes, values)

    # every torch call ---------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if type(func) is _PROPERTY:  # x.shape, x.device, x.T: a fifth of all calls
            # a traced tensor's is read as it is; a user's on its twin (`self.pos.device` is
            # meta there, as tensors made on it must be: on the CPU they met meta ones, and a
            # real forward took over)
            if id(args[0]) in self.originals:
                args, kwargs = self.meta_args(args, kwargs) or (args, kwargs)
            out = func(*args, **kwargs)
            if not isinstance(out, Tensor):
                return out
            tagged = tagged_inputs(args, kwargs)  # (.T, .mT, .data)
            if tagged:
                self._tag_outputs(func, args, kwargs, out, tagged, None)
            return out
        originals = self.originals
        if originals:  # (`meta_args`'s test, here: a call less, 0.15 µs, where none is one)
            for a in (*args, *kwargs.values()) if kwargs else args:
                if id(a) in originals or type(a) in _SEQUENCES and shares(originals, a):
                    twinned = self.meta_args(args, kwargs, func)
                    if twinned is None:
                        return self.constant_call(func, args, kwargs)
                    args, kwargs = twinned
                    break
        if func in FACTORIES and self.constants is not None:
            made = self.made_constant(func, args, kwargs)
            if made is not None:
                return made
        if func in _VIEWS and not kwargs and C.one_tensor(args):
            return self._view(func, args)
        return self._call(func, args, kwargs, run=True)

    def _view(self, func, args: tuple) -> Any:
        """`_call`'s steps for a `calls.VIEWS` call of one tensor by integers (x.flatten(2):
        a third of a token net's calls), past the tables it is in none of. (Torch disabled.)"""
        x = args[0]  # (`shapes.made`'s step for these, straight: 0.4 µs less a call)
        out = reshaped(func, args, {}, x) if func in RESHAPED and x.is_meta else None
        if out is None:
            out = func(*args)
        tag = getattr(x, TAG, None)
        if tag is not None:
            if tag.linear is not None and out is not x and C.reads_on(out):
                self._use(x, tag)
            if isinstance(out, Tensor):
                if tag.rf is None:  # lost stays lost, named once
                    new = self._still_lost(func, tag, 1)
                elif func in C.RESHAPE:
                    new = self._reshape_tag(x, tag, out)
                else:
                    new = self._keep_facts(func, tag, moved(func, args, {}, x, tag, out))
                retag(out, new)
        if func in _ENDS:  # a reshape of probabilities is probabilities (`ended`)
            made = getattr(x, PROBABILITIES, None)
            if made is not None and isinstance(out, Tensor):
                setattr(out, PROBABILITIES, made)
        elif out is x and getattr(out, PROBABILITIES, None) is not None:
            setattr(out, PROBABILITIES, None)
        return out

    def _call(self, func, args: tuple, kwargs: dict, run: bool) -> Any:
        """func's output, made from the inputs' shapes where `shapes.py` knows how (else run,
        or None if not `run`), with its tags. A call torch would refuse on real data that
        meta would run (`refusals.py`) raises, for the real forward to take over."""
        check = CHECKS.get(func)
        if check is not None:
            why = refusal(check, args, kwargs)
            if why is not None:
                raise Refused(why)
        w = C.window(func, args, kwargs) if func in C.WINDOWED else None
        if w is not None:
            return self._windowed(func, args, kwargs, w, run)
        out = S.made(func, args, kwargs) if func in S.MADE else None  # (a call less: 0.2 µs)
        if out is None:
            if not run:
                return None
            out = func(*args, **kwargs)
        tagged = tagged_inputs(args, kwargs)
        if tagged and type(out) is Tensor:  # most calls: `reads_on`, `_tag_outputs` inline
            if out.dtype is not torch.bool:
                for t, tag in tagged:
                    if tag.linear is not None and out is not t:  # x.contiguous() is x
                        self._use(t, tag)
            if not (args and out is args[0] and func in C.SAME):
                retag(out, self._tag(func, args, kwargs, out, tagged, None))
        elif tagged:
            if C.reads_on(out):
                for t, tag in tagged:
                    if tag.linear is not None and out is not t:
                        self._use(t, tag)
            self._tag_outputs(func, args, kwargs, out, tagged, None)
        if func in C.PROBABILITIES or (args and getattr(args[0], PROBABILITIES, None) is not None):
            self._probabilities(func, args, kwargs, out)
        return out

    def _probabilities(self, func, args: tuple, kwargs: dict, out: Any) -> None:
        """A softmax's output is probabilities, as is a reshape or clamp of them (`ended`
        reads it); a call that changes them in place leaves none. (Asked only where func
        makes them or its first argument is them: 0.4 µs less a call.)"""
        if func in _ENDS and C.keeps_probabilities(func, args, kwargs):
            if func in C.PROBABILITIES:
                made = (self.layer, _function_name(func), False)
            else:
                made = getattr(args[0], PROBABILITIES, None) if args else None
            if made is not None and isinstance(out, Tensor):
                setattr(out, PROBABILITIES, made)
        elif args and out is args[0] and getattr(out, PROBABILITIES, None) is not None:
            if func not in C.SAME:  # x.contiguous() is x, unchanged
                setattr(out, PROBABILITIES, None)  # changed in place (y.mul_(2))

    def _windowed(self, func, args: tuple, kwargs: dict, w: Window, run: bool) -> Any:
        """`_call` of a conv or pool: its tag comes from its input's alone (the first tagged
        one: the input's where it has one, which `_window_tag` takes straight away)."""
        x = args[0] if args else kwargs["input"]
        out = S.meta_window(func, args, kwargs, x, w, self._window_out(x, w))
        if out is None:
            if not run:
                return None
            out = func(*args, **kwargs)
        tag = getattr(x, TAG, None)
        if tag is not None and tag.linear is not None:
            self._use(x, tag)
        if tag is not None and isinstance(out, Tensor):
            retag(out, self._window_tag(func, args, kwargs, x, tag, w))
        else:
            tagged = [(x, tag)] if tag is not None else tagged_inputs(args, kwargs)
            if tagged:
                self._tag_outputs(func, args, kwargs, out, tagged, w)
        return out

    def meta_args(self, args: tuple, kwargs: dict, func: Any = None) -> tuple[tuple, dict] | None:
        """args and kwargs with every tensor of the user's model or constant (in them or in
        a list of them) replaced by its meta twin, made on first use: no call reads or writes
        the original (`copying.py`). None where all their tensors are constants."""
        originals = self.originals
        for a in (*args, *kwargs.values()) if kwargs else args:  # a loop, not any(genexpr)
            if id(a) in originals or type(a) in _SEQUENCES and shares(originals, a):
                break
        else:
            return args, kwargs
        if self.constants:
            if self.constants_only(args, kwargs):
                return None
            if func is not None:  # (None: a property's read)
                self.unknown_after(func, args, kwargs)
        twin = self._twin  # (a list, not a generator, and no dict made for no kwargs: 0.7 µs)
        args = tuple([type(a)(map(twin, a)) if type(a) in (list, tuple) else twin(a) for a in args])
        return args, {k: twin(v) for k, v in kwargs.items()} if kwargs else kwargs

    def _twin(self, t: Any) -> Any:
        if id(t) not in self.originals:
            return t
        new = self.twins.get(id(t))
        if new is None:
            new = self.twins[id(t)] = meta(t)
            S.note_range(new, t)  # an index buffer's values: checked where it picks
        return new

    def _window_out(self, x: Tensor, w: Window) -> tuple[int, int] | None:
        """The (H, W) window w makes of x's last two axes (None for a 1-D x, or padding
        "same": x's own); an output below 1×1 is `too_small`'s error."""
        if w.same or x.dim() < 2:
            return None
        try:
            return C.window_out(tuple(x.shape[-2:]), w)
        except SpecError as err:
            raise self.too_small(tuple(x.shape[-2:]), err) from None

    def _tag_outputs(self, func, args, kwargs, out, tagged, w) -> None:
        """Tags each tensor of `out` (chunk, split and unbind return several)."""
        if isinstance(out, Tensor):
            if args and out is args[0] and func in C.SAME:  # torch.as_tensor(x) is x: its
                return  # tag, and still the output of its row (no second row for it)
            retag(out, self._tag(func, args, kwargs, out, tagged, w))
        elif isinstance(out, (tuple, list)):
            if func in C.WITH_INDICES:
                out = out[:1]  # (values, indices)
            tag, dim = None, None
            for t in out:
                if isinstance(t, Tensor):
                    # a split's pieces have one tag (`tags.moved` reads their dim alone)
                    if tag is None or func not in C.SPLIT or t.dim() != dim:
                        tag, dim = self._tag(func, args, kwargs, t, tagged, w), t.dim()
                    retag(t, tag)


def _function_name(func: Any) -> str:
    """F.softmax, torch.sigmoid, Tensor.sigmoid, torch.special.expit: as the model's code
    writes it. F.sigmoid reaches the trace as the Tensor.sigmoid it calls: its frame, the
    caller's, tells it."""
    module = getattr(func, "__module__", None)
    if module == "torch.nn.functional":
        return f"F.{func.__name__}"
    if module == "torch._C._special":  # special_expit
        return f"torch.special.{func.__name__.removeprefix('special_')}"
    if func is Tensor.sigmoid and _called_by(F.sigmoid.__code__):
        return "F.sigmoid"
    return call_name(func)


def _called_by(code: Any, depth: int = 6) -> bool:
    """Whether a Python function of this code is among the nearest callers (the frames
    between are the trace's own)."""
    frame = sys._getframe(1)
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
