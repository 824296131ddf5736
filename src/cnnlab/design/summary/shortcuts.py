"""Leaf modules whose output the trace makes without running their forward: shape-keeping
layers (BatchNorm, activations, dropout: `_same_shape`, `_batch_norm`), convs (`_conv`) and
the one-call leaves of `leaves.py` (`_leaf`), on a meta input, tagged as the mode would tag
their call. Each returns None where the forward must run (a real input, arguments torch
would refuse), so that torch judges it. A mixin of `trace.Tracer` (its `types`, `judged`,
`where`, and the tag rules of `roles.Roles`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.summary import calls as C
from cnnlab.design.summary import shapes as S
from cnnlab.design.summary.fits import NORM_MODULES
from cnnlab.design.summary.layouts import CL, dense, layout, suggested
from cnnlab.design.summary.leaves import (
    conv2d_call,
    conv_transpose2d_call,
    leaf_call,
    linear_call,
)
from cnnlab.design.summary.macs import macs_rule
from cnnlab.design.summary.rearrange import transposed_size
from cnnlab.design.summary.refusals import refuse_meta, refused_forward
from cnnlab.design.summary.tags import (
    BATCH_NORM_DIMS,
    PROBABILITIES,
    TAG,
    one_input_rule,
    retag,
    same_shape_call,
)
from cnnlab.errors import SpecError

# torch's instance norms: the dims of the batched input their shortcut makes the output of
INSTANCE_NORM_DIMS = {nn.InstanceNorm1d: 3, nn.InstanceNorm2d: 4, nn.InstanceNorm3d: 5}
# module types (exactly) with a maker of their own: its name, and the function whose tag
# rule it takes
_OWN = {
    **dict.fromkeys(INSTANCE_NORM_DIMS, ("_instance_norm", F.instance_norm)),
    nn.PReLU: ("_prelu", torch.prelu),
}
# one-call leaves (`leaves.py`) whose output a maker of their own makes in one step
_ONE_STEP = {
    conv2d_call: "_conv",
    linear_call: "_linear",
    conv_transpose2d_call: "_conv_transpose",
}


class Shortcuts:
    """How each module type's output is made without its forward, and the makers."""

    def _maker(self, module: nn.Module, state: dict) -> tuple[str, Callable | None, Any]:
        """The module's class name, MACs rule and how its output is made without its forward
        (`_type`; None: the forward runs), for a module whose arguments torch refuses a
        maker that raises its words (`refusals.refuse_meta`). A forward set on the instance
        (not its type's: a user's, the trainer's fp32 one) runs: the type's shortcut would
        make the type's output."""
        kind, rule, shortcut, names = self._type(module)
        if "forward" in state:
            return kind, rule, None
        if names is not None:  # a `_same_shape` module: torch judges its arguments
            why = self._arguments_refused(module, state, names)
            if why is not None:
                shortcut = functools.partial(refuse_meta, why)
        return kind, rule, shortcut

    def _type(self, module: nn.Module) -> tuple[str, Callable | None, Callable | None, Any]:
        """The module's class name, MACs rule (`macs.py`), how to make its output without
        its forward (`_same_shape`, `_leaf`; None: the forward runs) and, for `_same_shape`,
        the names of the arguments its forward reads (its public attributes; else None).
        Found once per type and trace (walks up the class tree: 4 µs a module); for a
        Hardtanh (ReLU6 is one), once per type and lower bound, which decides which
        activation it is."""
        kind = type(module)
        found = self.types.get(kind)
        if found is not None:
            return found
        key = (kind, vars(module).get("min_val")) if issubclass(kind, nn.Hardtanh) else kind
        found = self.types.get(key)
        if found is None:
            shortcut, names = self._shortcut(module, kind)
            found = self.types[key] = (kind.__name__, macs_rule(kind), shortcut, names)
        return found

    def _shortcut(self, module: nn.Module, kind: type) -> tuple[Callable | None, Any]:
        """`_type`'s maker of the module's output and the names of the arguments torch must
        judge: shape-keeping layers, the types of `_OWN`, norms, then the one-call leaves."""
        func = same_shape_call(module)
        if func is F.batch_norm:
            return self._batch_norm, None
        if func is not None:
            keeps = func in C.KEEP_PROBABILITIES  # dropout: a softmax's output stays one
            names = tuple(k for k in vars(module) if k[0] != "_" and k != "training")
            if set(names) <= {"inplace"}:  # nn.ReLU, nn.Sigmoid: nothing to judge
                names = None  # (`inplace` is read for its truth, `_judged_by_torch`)
            return functools.partial(self._same_shape, one_input_rule(func), keeps), names
        if kind in _OWN:
            maker, call_func = _OWN[kind]
            return functools.partial(getattr(self, maker), one_input_rule(call_func)), None
        norm = _norm_module(kind)
        if norm is not None:
            fits, call_func = norm
            return functools.partial(self._norm, fits, call_func, one_input_rule(call_func)), None
        call = leaf_call(kind)
        if call is None:
            return None, None
        if call in _ONE_STEP:
            return getattr(self, _ONE_STEP[call]), None
        return functools.partial(self._leaf, call), None

    def _arguments_refused(self, module: nn.Module, state: dict, names: tuple) -> str | None:
        """Why torch refuses a shape-keeping module's arguments (nn.GELU('bad'),
        nn.Dropout's p set to 2, nn.Hardtanh(2, 1)), None where it runs them: its forward
        run once on a real 1×1×1×1 zero of the model's dtype, torch being the judge of its
        own arguments. Once per type, argument values and trace (the values with their
        types: True is not 1 to nn.GELU); per module, never per call. `names`: the
        arguments (`_type`), read by name with two maps (a key 0.5 µs, 1.0 over vars())."""
        values = tuple(map(state.get, names))
        key = (type(module), values, tuple(map(type, values)))
        try:
            why = self.judged.get(key, False)
        except TypeError:  # an unhashable argument (a list): judged for this module alone
            return refused_forward(module, self.dtype)
        if why is False:
            runs = _runs(type(module), names, values, self.dtype)
            why = self.judged[key] = None if runs else refused_forward(module, self.dtype)
        return why

    def _same_shape(self, rule: tuple, keeps: bool, module: nn.Module, x: Any) -> Tensor | None:
        """A shape-keeping layer on a meta input: its output, tagged as its call would be
        (`rule`: `tags.one_input_rule` of it, found once per type), without running its
        forward (BatchNorm and ReLU are 100 of ResNet-50's 160 calls). None where the layer
        must run: a real input, or one BatchNorm2d would refuse. (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta:
            return None
        # vars(): a getattr that misses goes through nn.Module.__getattr__ (1.2 µs, 0.15)
        if vars(module).get("inplace", False):
            tag = getattr(x, TAG, None)
            if tag is not None:
                if tag.linear is not None:
                    self._use(x, tag)
                retag(x, self._one_input(tag, *rule))
            return x
        out = self._tagged_same(rule, x, S.new_meta(x))  # new: no row's output yet, no retag
        made = getattr(x, PROBABILITIES, None) if keeps else None
        if made is not None:
            setattr(out, PROBABILITIES, made)
        return out

    def _batch_norm(self, module: nn.BatchNorm2d, x: Any) -> Tensor | None:
        """`_same_shape` of torch's BatchNorm1d/2d/3d where its call fits: a meta input of its
        dims and channels, its statistics' dtype, running statistics or more than one value
        per channel (else the forward runs, and torch or `refusals.py` judge it). Its own
        method, which spares every activation the BatchNorm checks (with `record`, the getter
        reads without twins and `_pad_tag`'s records: 1.01-1.07x, median per-pair ratio on
        four families, same-run alternated calls). (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta:
            return None
        state, shape, dtype = vars(module), x.shape, x.dtype
        mean, weight = state["_buffers"].get("running_mean"), state["_parameters"].get("weight")
        if (
            len(shape) not in BATCH_NORM_DIMS[type(module)]
            or shape[1] != state["num_features"]
            or (mean.dtype != dtype if mean is not None else x.numel() <= shape[1])
            or (weight is not None and weight.dtype != dtype)
        ):
            return None
        # linear in its input (as inference runs it): the facts stay
        return self._tagged_same((False, True), x, S.new_meta(x))

    def _instance_norm(self, rule: tuple, module: nn.Module, x: Any) -> Tensor | None:
        """An nn.InstanceNorm1d/2d/3d (two in every block of MONAI's nets) on a batched meta
        input of its channels, normalised by its own statistics over more than one position,
        its tensors of x's dtype: a new contiguous map, as torch's CPU kernel makes it. Else
        None: the forward runs (an unbatched input, other channels, which torch refuses or
        warns of; running statistics in eval mode, which the mode's `fits._in_fits` judges).
        (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta or not x.is_floating_point():
            return None
        state, shape, dtype = vars(module), x.shape, x.dtype
        if (
            len(shape) != INSTANCE_NORM_DIMS[type(module)]
            or shape[1] != state["num_features"]
            or not (state["training"] or not state["track_running_stats"])
            or math.prod(shape[2:]) <= 1  # torch: "Expected more than 1 spatial element"
            or not _of(dtype, shape[1], state["_parameters"], state["_buffers"])
        ):
            return None
        out = S.new_meta(x) if x.is_contiguous() else torch.empty(shape, dtype=dtype, device=C.META)
        return self._tagged_same(rule, x, out)

    def _prelu(self, rule: tuple, module: nn.PReLU, x: Any) -> Tensor | None:
        """An nn.PReLU (MONAI's default activation) on a dense meta input of two or more dims,
        its slopes one or one a channel of x's dtype: a new map of x's layout. Else None: the
        forward runs, and torch judges it. (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta or x.dim() < 2 or not dense(x):
            return None
        w = vars(module)["_parameters"].get("weight")
        if w is None or w.dtype != x.dtype or w.dim() > 1 or w.numel() not in (1, x.shape[1]):
            return None
        return self._tagged_same(rule, x, S.new_meta(x))

    def _tagged_same(self, rule: tuple, x: Tensor, out: Tensor) -> Tensor:
        """`out`, of x's shape, tagged as a one-input element-wise call's (`rule`)."""
        tag = getattr(x, TAG, None)
        if tag is not None and tag.linear is not None:
            self._use(x, tag)
        if tag is not None:
            setattr(out, TAG, self._one_input(tag, *rule))
        return out

    def _leaf(self, call: Callable, module: nn.Module, x: Any) -> Tensor | None:
        """A leaf whose forward is one torch call (`leaves.py`) on a meta input: the call's
        output made and tagged as the mode would; None where the forward must run. (Torch
        functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta:
            return None
        found = call(module, x)
        if found is None:
            return None
        func, args = found
        return self._call(func, args, {}, run=False)

    def _conv(self, module: nn.Conv2d, x: Any) -> Tensor | None:
        """`_leaf` of an nn.Conv2d (half of a MobileNet's calls) in one step: F.conv2d's output
        made from the module's attributes (in torch's layout: `shapes.layout`), tagged as
        `_call` would, where the call fits (4-D meta input, its channels, one dtype, zero
        padding mode, a padding torch takes; else None: the forward runs, judged by torch or
        `refusals.py`). Skips `_leaf`'s argument tuple, `_call`'s dispatch and `meta_window`'s
        checks: 1.01-1.05x (median per-pair ratio, four families, alternated calls)."""
        if not isinstance(x, Tensor) or not x.is_meta:
            return None
        state = vars(module)
        p = state["_parameters"]
        weight, bias, groups = p.get("weight"), p.get("bias"), state["groups"]
        if weight is None:
            return None
        shape, dtype, kernel = x.shape, x.dtype, weight.shape  # (each read once: 0.13 µs)
        if (
            len(shape) != 4
            or state["padding_mode"] != "zeros"
            or kernel[1] * groups != shape[1]
            or not kernel[0]  # 0 output channels: torch refuses (`refusals.py`)
            or weight.dtype != dtype
            or (bias is not None and (bias.dtype != dtype or bias.shape != kernel[:1]))
        ):
            return None
        k = (kernel[2], kernel[3])
        w = C.conv_window_of(k, state["stride"], state["padding"], state["dilation"])
        if w is None:
            return None
        out_map = (shape[2], shape[3])  # 'same' (stride 1) keeps it; `_window_out` inline,
        # sizes one by one to torch.empty, F.pad first in `made`: the trace 1.016-1.025x (median
        # per-pair ratio of 500 alternated traces, four families; an A/A run: 0.995-1.010)
        if not w.same:
            try:
                out_map = C.window_out(out_map, w)
            except SpecError as err:
                raise self.too_small(out_map, err) from None
        fmt = layout(x, weight)
        out = torch.empty(
            shape[0], kernel[0], *out_map, dtype=dtype, device=C.META, memory_format=fmt
        )
        tag = getattr(x, TAG, None)
        if tag is not None and tag.linear is not None:
            self._use(x, tag)
        if tag is not None:
            args = (x, weight, bias, None, None, None, groups)  # as `_window_tag` reads them
            setattr(out, TAG, self._window_tag(F.conv2d, args, {}, x, tag, w))
        return out

    def _conv_transpose(self, module: nn.ConvTranspose2d, x: Any) -> Tensor | None:
        """`_leaf` of an nn.ConvTranspose2d (MONAI's decoders) in one step: the output
        `rearrange.transposed` makes, from the module's attributes and the weight it holds
        (no meta twin: a dense weight's strides are its twin's), tagged as `_call` tags
        F.conv_transpose2d's, where the call fits (a float 4-D meta input of the weight's
        channels, one dtype, no empty weight, pairs of ints torch takes; else None: the
        forward runs, judged by torch or `refusals.py`). (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta or not x.is_floating_point():
            return None
        state = vars(module)
        p = state["_parameters"]
        weight, bias, groups = p.get("weight"), p.get("bias"), state.get("groups")
        shape, dtype = x.shape, x.dtype
        if (
            weight is None
            or weight.dim() != 4
            or len(shape) != 4
            or type(groups) is not int
            or groups < 1
            or weight.dtype != dtype
            or shape[1] != weight.shape[0]
            or weight.shape[0] % groups
            or not weight.numel()  # torch refuses an empty weight (`refusals.py`)
            or state.get("padding_mode") != "zeros"
        ):
            return None
        channels = weight.shape[1] * groups
        if bias is not None and (bias.dtype != dtype or tuple(bias.shape) != (channels,)):
            return None
        size = _transposed_size(shape, weight.shape, state)
        if size is None or not shape[0]:
            return None
        w = weight if dense(weight) and not weight.is_meta else self._twin(weight)
        fmt = CL if CL in (suggested(x), suggested(w)) else torch.contiguous_format
        out = torch.empty(
            (shape[0], channels, *size), dtype=dtype, device=C.META, memory_format=fmt
        )
        tag = getattr(x, TAG, None)
        if tag is not None:
            if tag.linear is not None:
                self._use(x, tag)
            args = (x, weight, bias, state["stride"], state["padding"],
                    state["output_padding"], groups, state["dilation"])  # fmt: skip
            setattr(out, TAG, self._tag(F.conv_transpose2d, args, {}, out, [(x, tag)], None))
        return out

    def _linear(self, module: nn.Linear, x: Any) -> Tensor | None:
        """`_leaf` of an nn.Linear (about a hundred calls in a token net) in one step: F.linear's
        output made from the weight's shape and tagged as `_call` would, where the call fits
        (a float meta input whose last dim is the weight's inputs, one dtype, a bias of one
        value an output; else None: the forward runs, judged by torch or `refusals.py`).
        `_leaf` could not serve it: the copy's weight is the user's tensor, not meta, so
        `shapes.linear_shape` sent every call on to the forward, the mode and a meta twin
        of the weight. (Torch functions disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta:
            return None
        p = vars(module)["_parameters"]
        weight, bias = p.get("weight"), p.get("bias")
        shape, dtype = x.shape, x.dtype
        if (
            weight is None
            or weight.dim() != 2
            or not shape
            or shape[-1] != weight.shape[1]
            or not x.is_floating_point()
            or weight.dtype != dtype
            or (bias is not None and (bias.dtype != dtype or bias.shape != weight.shape[:1]))
        ):
            return None
        out = torch.empty(*shape[:-1], weight.shape[0], dtype=dtype, device=C.META)
        tag = getattr(x, TAG, None)
        if tag is not None and tag.linear is not None:
            self._use(x, tag)
        if tag is not None:
            setattr(out, TAG, self._linear_tag((x, weight, bias), {}, x, tag, out))
        return out

    def _norm(
        self, fits: Callable, func: Callable, rule: tuple, module: nn.Module, x: Any
    ) -> Tensor | None:
        """An nn.LayerNorm or nn.GroupNorm (thirty in a token net): its output made in the
        layout torch's CPU kernel gives it (`shapes.norm_out`), where its call fits (a float
        meta input, weight and bias of its dtype, `fits`: `fits.layer_norm_module_fits`,
        `group_norm_module_fits`) and its layout is sure; else None: the forward runs,
        judged by torch or `refusals.py` (which takes float32 parameters for a bfloat16
        input). `rule`: `tags.one_input_rule` of the function its forward calls. Saves that
        function's Python dispatch, the weight's meta twin and `_call`. (Torch functions
        disabled.)"""
        if not isinstance(x, Tensor) or not x.is_meta or not x.is_floating_point():
            return None
        state = vars(module)
        p = state["_parameters"]
        weight, bias, dtype = p.get("weight"), p.get("bias"), x.dtype
        if (weight is not None and weight.dtype != dtype) or (
            bias is not None and bias.dtype != dtype
        ):
            return None
        if not fits(state, x, weight, bias):
            return None
        out = S.norm_out(func, x)
        return None if out is None else self._tagged_same(rule, x, out)


def _runs(kind: type, names: tuple, values: tuple, dtype: torch.dtype) -> bool:
    """Arguments whose forward torch surely runs on a float32 or float64 input, so none is
    run to judge them (30-90 µs each, once a summary): nn.ReLU6's own bounds, 0.0 and 6.0
    (its forward is F.hardtanh(x, 0.0, 6.0)), nn.Dropout's p a float in [0, 1], the range
    torch checks (F.dropout in Python, then ATen's dropout), nn.GELU's approximate one of
    the two strings torch takes; `inplace` a bool."""
    if dtype not in (torch.float32, torch.float64):
        return False
    given = dict(zip(names, values, strict=True))
    if type(given.pop("inplace", False)) is not bool:
        return False
    if kind is nn.ReLU6:
        low, high = given.pop("min_val", None), given.pop("max_val", None)
        return not given and type(low) is type(high) is float and (low, high) == (0.0, 6.0)
    if kind is nn.Dropout:
        p = given.pop("p", None)
        return not given and type(p) is float and 0.0 <= p <= 1.0
    if kind is nn.GELU:
        approximate = given.pop("approximate", None)
        return not given and type(approximate) is str and approximate in ("none", "tanh")
    return False


def _of(dtype: torch.dtype, channels: int, *tensor_dicts: dict) -> bool:
    """Every tensor of the dicts (a norm's weight, bias, running statistics) is one value a
    channel, of `dtype`."""
    return all(
        t is None or (t.dtype == dtype and tuple(t.shape) == (channels,))
        for tensors in tensor_dicts
        for t in tensors.values()
    )


def _transposed_size(shape: tuple, kernel: tuple, state: dict) -> tuple[int, ...] | None:
    """`rearrange.transposed_size` of a module's pairs of ints; None where one is not a pair
    of ints."""
    pairs = tuple(map(state.get, ("stride", "padding", "dilation", "output_padding")))
    if not all(type(v) is tuple and len(v) == 2 and type(v[0]) is type(v[1]) is int for v in pairs):
        return None
    s, p, d, extra = pairs
    return transposed_size((shape[2], shape[3]), (kernel[2], kernel[3]), s, p, d, extra)


def _norm_module(kind: type) -> tuple[Callable, Callable] | None:
    """(fits, function) of a torch norm module type or a subclass with its forward."""
    for base, found in NORM_MODULES.items():
        if issubclass(kind, base) and kind.forward is base.forward:
            return found
    return None
