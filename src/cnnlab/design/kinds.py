"""The layer kinds of the spec language: one record per kind, read by every part of design.

A :class:`Kind` holds everything cnnlab knows about one kind: its arguments (default, value
rule, meaning), which argument the short form ``kind: value`` sets, its shape rule (input
shape -> output shape, from the formulas alone), its builder (-> ``nn.Module``) and an
example. The spec parser reads the arguments, :func:`infer` the shape rules, :func:`modules`
the builders, and docs/spec.md is checked against the same records (tests/test_docs_spec.py).
A shape rule and a builder are required fields: a kind cannot silently keep its input's shape.

Shapes are (C, H, W) for feature maps and (F,) for flat features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from cnnlab import geometry
from cnnlab.design import arguments as check
from cnnlab.design.activations import ACTIVATIONS, SPEC_ACTIVATIONS
from cnnlab.design.layers import (
    AdaptiveConcatPool2d,
    ConcatPool2d,
    Conv2dSame,
    GlobalAvgPool2d,
    Residual,
)
from cnnlab.errors import SpecError

__all__ = ["KINDS", "REQUIRED", "Arg", "Kind", "Layer", "Shape", "infer", "modules"]

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) for flat features
REQUIRED = object()  # an argument's default when it has none


@dataclass(frozen=True)
class Layer:
    """One layer: its kind, its arguments and, once validated, its output shape.

    A residual layer's ``args["layers"]`` is the tuple of its body's Layers. ``shape`` is set
    by :func:`infer` (load_spec does it once); it is not part of equality or hashing, so a
    layer equals the same layer before validation.
    """

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    shape: Shape | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    def __hash__(self) -> int:
        return hash((self.kind, tuple(sorted(self.args.items(), key=lambda kv: kv[0]))))

    def __reduce__(self):  # a mappingproxy cannot be pickled or deep-copied; a dict can
        return (Layer, (self.kind, dict(self.args), self.shape))

    def __repr__(self) -> str:
        return f"Layer({self.kind!r}, {dict(self.args)!r})"

    def to_obj(self) -> str | dict:
        """The layer as the spec language writes it: bare, short form, or long form.

        Arguments at their default are left out, so the text stays short and readable.
        """
        kind = KINDS.get(self.kind)
        defaults = {} if kind is None else {k: a.default for k, a in kind.args.items()}
        args = {}
        for key, value in self.args.items():
            if key == "stride" and self.kind in POOLS and value == self.args.get("kernel"):
                continue  # a pool's stride defaults to its kernel
            if key in defaults and value == defaults[key] and key not in ALWAYS_SHOWN:
                continue
            if key == "layers":
                value = [layer.to_obj() for layer in value]
            args[key] = list(value) if isinstance(value, tuple) else value
        if not args:
            return self.kind
        if kind is not None and list(args) == [kind.short]:
            return {self.kind: args[kind.short]}
        return {self.kind: args}


@dataclass(frozen=True)
class Arg:
    """One argument: its default (REQUIRED if none), its value rule and what it means."""

    default: Any
    check: Callable[[Any], Any] | None  # None: the parser handles it (a residual's body)
    doc: str


ShapeRule = Callable[[Mapping, Shape, str], Shape]  # (args, input shape, "layer 4 (conv)")
Builder = Callable[[Mapping, Shape], nn.Module]  # (args, input shape) -> module


@dataclass(frozen=True)
class Kind:
    """One layer kind: what it does, its arguments, short form, shape rule, builder, example."""

    name: str
    doc: str
    args: Mapping[str, Arg]
    short: str | None  # the argument `kind: value` sets; None: the kind takes no value
    shape: ShapeRule
    make: Builder
    example: str  # one layer in the spec language, e.g. "maxpool: 2"

    def __post_init__(self) -> None:
        if not callable(self.shape) or not callable(self.make):
            raise TypeError(f"kind {self.name} needs a shape rule and a builder")
        if self.short is not None and self.short not in self.args:
            raise TypeError(f"kind {self.name}: short form {self.short} is no argument")


# --- shape rules -------------------------------------------------------------------------------


def fmt(shape: Shape) -> str:
    """(32, 14, 14) -> "32×14×14", (10,) -> "10 features": how a shape reads in a message."""
    return "×".join(map(str, shape)) if len(shape) == 3 else f"{shape[0]} features"


def _hw(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def _dims(value: int | tuple[int, int]) -> str:
    """3 -> "3", (3, 5) -> "3×5": how a size argument reads in a message."""
    return str(value) if isinstance(value, int) else "×".join(map(str, value))


def _maps(shape: Shape, where: str) -> Shape:
    if len(shape) != 3:
        raise SpecError(
            f"{where}: needs feature maps (C, H, W) but its input is flat ({fmt(shape)}); "
            "put it before flatten/gap"
        )
    return shape


def _windows(where: str, shape: Shape, a: Mapping, pads: tuple) -> tuple[int, int]:
    """Output (H, W) of a sliding window, per axis by geometry.conv_output_size (§2.2);
    `pads` holds each axis' (before, after) padding. The message names both axes."""
    dilation = a.get("dilation", 1)
    axes = zip(shape[1:], _hw(a["kernel"]), pads, _hw(a["stride"]), _hw(dilation), strict=True)
    try:
        return tuple(geometry.conv_output_size(*axis) for axis in axes)
    except SpecError:
        padded = tuple(n + b + f for n, (b, f) in zip(shape[1:], pads, strict=True))
        taps = zip(_hw(a["kernel"]), _hw(dilation), strict=True)
        extent = tuple(d * (k - 1) + 1 for k, d in taps)
        spans = "" if dilation == 1 else f" (dilation {_dims(dilation)}: spans {_dims(extent)})"
        raise SpecError(
            f"{where}: kernel {_dims(a['kernel'])}{spans} exceeds its padded input "
            f"{_dims(padded)}, so the output would be below 1×1; use a smaller kernel, more "
            "padding, or less downsampling before it"
        ) from None


def _conv_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    c, _, _ = _maps(shape, where)
    for what, n in (("input channels", c), ("filters", a["filters"])):
        if n % a["groups"]:
            raise SpecError(f"{where}: {what} {n} is not divisible by groups {a['groups']}")
    if a["padding"] == "same":
        pads = tuple(
            geometry.same_padding(k, d)
            for k, d in zip(_hw(a["kernel"]), _hw(a["dilation"]), strict=True)
        )
    else:
        pads = tuple((p, p) for p in _hw(a["padding"]))
    return (a["filters"], *_windows(where, shape, a, pads))


def _pool_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    c, _, _ = _maps(shape, where)
    padding = a.get("padding", 0)
    for k, p in zip(_hw(a["kernel"]), _hw(padding), strict=True):
        if 2 * p > k:  # PyTorch refuses it: a window could lie wholly in the padding
            raise SpecError(
                f"{where}: padding {_dims(padding)} is more than half the kernel "
                f"{_dims(a['kernel'])}; PyTorch pools allow at most kernel // 2"
            )
    return (c, *_windows(where, shape, a, tuple((p, p) for p in _hw(padding))))


def _concatpool_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    c, h, w = _pool_shape(a, shape, where)
    return (2 * c, h, w)  # max maps, then average maps


def _adaptive_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    c, _, _ = _maps(shape, where)
    return (2 * c, *_hw(a["output_size"]))


def _gap_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    return (_maps(shape, where)[0],)


def _flatten_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    return (math.prod(shape),)


def _linear_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    if len(shape) != 1:
        raise SpecError(
            f"{where}: its input is feature maps {fmt(shape)}, not flat features; "
            "add `flatten` or `gap` before it"
        )
    return (a["features"],)


def _same_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    """Element-wise layers (activations, dropout, batchnorm) keep their input's shape."""
    return shape


def _residual_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    out = a["layers"][-1].shape  # the body is inferred first (see infer)
    skip_projection(shape, out, where)  # raises when no shortcut fits
    return out


def skip_projection(inp: Shape, out: Shape, where: str = "residual") -> tuple[int, int] | None:
    """The shortcut a residual block needs: None for identity, else the 1×1 projection's stride.

    Rule: y = body(x) + shortcut(x). If the body keeps the shape, the shortcut is the identity.
    Otherwise it is a 1×1 conv (stride s, no padding; followed by batchnorm when the body has
    one) from C to C' channels, with the smallest stride per axis that maps H×W to the body's
    H'×W' (⌊(H − 1)/s⌋ + 1 = H'); for flat features, a linear layer F -> F'. Returns (sh, sw)
    for maps, (1, 1) for flat features. Raises SpecError if no such stride exists (the body
    grows the maps, or shrinks them by a non-integer factor) or the body flattens its input.
    """
    if inp == out:
        return None
    if len(inp) != len(out):
        raise SpecError(
            f"{where}: the body turns {fmt(inp)} into {fmt(out)}; a residual body must "
            "keep feature maps as maps (move flatten/gap after the block)"
        )
    if len(inp) == 1:
        return (1, 1)
    strides = []
    for size, target in zip(inp[1:], out[1:], strict=True):
        # ⌊(size − 1)/s⌋ = target − 1 holds for s in ((size−1)/target, (size−1)/(target−1)]
        stride = (size - 1) // target + 1
        if target > size or geometry.conv_output_size(size, 1, 0, stride) != target:
            raise SpecError(
                f"{where}: the body maps {fmt(inp)} to {fmt(out)}, and no strided 1×1 "
                f"projection turns {inp[1]}×{inp[2]} into {out[1]}×{out[2]}; make the body "
                "keep the size, or downsample by an integer stride"
            )
        strides.append(stride)
    return tuple(strides)


# --- builders ----------------------------------------------------------------------------------


def _conv(a: Mapping, shape: Shape) -> nn.Module:
    common = dict(
        in_channels=shape[0],
        out_channels=a["filters"],
        kernel_size=a["kernel"],
        stride=a["stride"],
        dilation=a["dilation"],
        groups=a["groups"],
        bias=a["bias"],
    )
    if a["padding"] != "same":
        return nn.Conv2d(padding=a["padding"], **common)
    pads = [
        geometry.same_padding(k, d)
        for k, d in zip(_hw(a["kernel"]), _hw(a["dilation"]), strict=True)
    ]
    if all(before == after for before, after in pads):  # odd kernel: symmetric, as the notes
        return nn.Conv2d(padding=tuple(before for before, _ in pads), **common)
    if a["stride"] == 1:
        return nn.Conv2d(padding="same", **common)  # even kernel: the odd pixel goes after
    return Conv2dSame(**common)


def _shortcut(body: Sequence[Layer], shape: Shape, out: Shape) -> nn.Module | None:
    stride = skip_projection(shape, out)
    if stride is None:
        return None
    norm = any(layer.kind == "batchnorm" for layer in body)
    if len(shape) == 1:
        proj = nn.Linear(shape[0], out[0], bias=not norm)
        return nn.Sequential(proj, nn.BatchNorm1d(out[0])) if norm else proj
    proj = nn.Conv2d(shape[0], out[0], 1, stride=stride, bias=not norm)  # bias: BN has one
    return nn.Sequential(proj, nn.BatchNorm2d(out[0])) if norm else proj


def _residual(a: Mapping, shape: Shape) -> nn.Module:
    body = a["layers"]
    return Residual(modules(body, shape), _shortcut(body, shape, body[-1].shape))


def _batchnorm(a: Mapping, shape: Shape) -> nn.Module:
    return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])


def _activation(name: str) -> Builder:
    """The activation table's spec builder, given the kind's one argument (if any)."""
    return lambda a, shape: ACTIVATIONS[name].make(next(iter(a.values()), None))


# --- the walk: shapes and modules of a list of layers ------------------------------------------


def infer(layers: Sequence[Layer], input: Shape, prefix: str = "") -> tuple[Layer, ...]:
    """The layers with their output shapes set, starting from `input`; a residual's body
    first. SpecError names the first layer that cannot run ("layer 5.2 (conv): ...");
    `prefix` is put before each index ("5." for the body of layer 5)."""
    shape, out = tuple(input), []
    for i, layer in enumerate(layers):
        where = f"layer {prefix}{i} ({layer.kind})"
        args = layer.args
        if "layers" in args:  # a body: its layers run on this layer's input
            args = {**args, "layers": infer(args["layers"], shape, f"{prefix}{i}.")}
        shape = KINDS[layer.kind].shape(args, shape, where)
        if any(n < 1 for n in shape):  # e.g. adaptive output sizes are checked here too
            raise SpecError(f"{where}: output {fmt(shape)} is below 1×1")
        out.append(Layer(layer.kind, args, shape))
    return tuple(out)


def modules(layers: Sequence[Layer], input: Shape) -> list[nn.Module]:
    """One new module per inferred layer (see :func:`infer`), `input` being the first's."""
    out, shape = [], tuple(input)
    for layer in layers:
        out.append(KINDS[layer.kind].make(layer.args, shape))
        shape = layer.shape
    return out


# --- the records -------------------------------------------------------------------------------

_KERNEL = Arg(2, check.size, "window size, an integer or [h, w]")
_POOL_STRIDE = Arg(None, check.pool_stride, "step between windows; default: the kernel")
_POOL_ARGS = {
    "kernel": _KERNEL,
    "stride": _POOL_STRIDE,
    "padding": Arg(0, check.nonneg_size, "zeros on each side, at most kernel // 2"),
}
_BIAS = Arg(True, check.flag, "learn an additive bias")
# The activation kinds' arguments: (name, Arg) of the one a kind takes, if any.
_ACTIVATION_ARG = {
    "leaky_relu": ("slope", Arg(0.01, check.number, "slope for x < 0")),
    "elu": ("alpha", Arg(1.0, check.number, "alpha · (exp(x) − 1) for x < 0")),
    "gelu": ("approximate", Arg("none", check.approximation, "none, or tanh for the fast form")),
}
_ACTIVATION_DOC = {
    "relu": "max(0, x): the notes' default activation (§4.2)",
    "leaky_relu": "x for x > 0, slope · x below: a dead unit keeps a gradient (§4.3)",
    "elu": "x for x > 0, alpha · (exp(x) − 1) below: smooth, negative outputs",
    "gelu": "x · Φ(x), the Gaussian error linear unit",
    "sigmoid": "1 / (1 + exp(−x)), in (0, 1); saturates (§4.2)",
    "tanh": "tanh(x), in (−1, 1); saturates (§4.2)",
}


def _activation_kind(name: str) -> Kind:
    arg = _ACTIVATION_ARG.get(name)
    args = {} if arg is None else {arg[0]: arg[1]}
    example = name if arg is None else f"{name}: {arg[1].default}"
    if name == "gelu":
        example = "gelu: tanh"
    return Kind(
        name, _ACTIVATION_DOC[name], args, None if arg is None else arg[0],
        _same_shape, _activation(name), example,
    )  # fmt: skip


_TABLE = (
    Kind("conv", "2-D convolution: `filters` maps, each a sliding dot product (§2)",
         {"filters": Arg(REQUIRED, check.positive, "output channels (number of kernels)"),
          "kernel": Arg(3, check.size, "kernel size, an integer or [h, w]"),
          "stride": Arg(1, check.size, "step between windows"),
          "padding": Arg(0, check.conv_padding,
                         "zeros per side: integer, [h, w], same (t = D(K − 1) per axis, t // 2 "
                         "before and the rest after, as PyTorch; also at a stride S > 1, "
                         "which nn.Conv2d refuses: O = ⌈I / S⌉) or valid (0)"),
          "dilation": Arg(1, check.size, "spacing between kernel taps"),
          "groups": Arg(1, check.positive, "channel groups; both channel counts divisible"),
          "bias": _BIAS},
         "filters", _conv_shape, _conv, "conv: {filters: 32, kernel: 3, padding: same}"),
    Kind("maxpool", "max of each window (§3)", _POOL_ARGS, "kernel", _pool_shape,
         lambda a, s: nn.MaxPool2d(a["kernel"], a["stride"], a["padding"]), "maxpool: 2"),
    Kind("avgpool", "mean of each window; padding zeros count in the mean, as in PyTorch (§3)",
         _POOL_ARGS, "kernel", _pool_shape,
         lambda a, s: nn.AvgPool2d(a["kernel"], a["stride"], a["padding"]), "avgpool: 2"),
    Kind("concatpool", "max and average pooling side by side: 2C channels (§3.3)",
         {"kernel": _KERNEL, "stride": _POOL_STRIDE}, "kernel", _concatpool_shape,
         lambda a, s: ConcatPool2d(a["kernel"], a["stride"]), "concatpool: 2"),
    Kind("adaptiveconcatpool",
         "adaptive max and average pooling to a fixed size: (2C, s, s); flatten before linear",
         {"output_size": Arg(1, check.size, "output size s, an integer or [h, w]")},
         "output_size", _adaptive_shape,
         lambda a, s: AdaptiveConcatPool2d(a["output_size"]), "adaptiveconcatpool: 1"),
    Kind("gap", "global average pooling: (C, H, W) -> (C,), any input size (§3.1)", {}, None,
         _gap_shape, lambda a, s: GlobalAvgPool2d(), "gap"),
    Kind("flatten", "(C, H, W) -> (C·H·W,): the classic dense head's first step (§5.2)", {},
         None, _flatten_shape, lambda a, s: nn.Flatten(), "flatten"),
    Kind("linear", "fully connected layer on flat features (after flatten or gap)",
         {"features": Arg(REQUIRED, check.positive, "output features"), "bias": _BIAS},
         "features", _linear_shape,
         lambda a, s: nn.Linear(s[0], a["features"], bias=a["bias"]), "linear: 10"),
    Kind("dropout", "zeroes each value with probability p while training",
         {"p": Arg(0.5, check.probability, "drop probability, 0 <= p < 1")}, "p", _same_shape,
         lambda a, s: nn.Dropout(a["p"]), "dropout: 0.2"),
    Kind("batchnorm", "batch normalisation: BatchNorm2d on maps, BatchNorm1d on features",
         {}, None, _same_shape, _batchnorm, "batchnorm"),
    Kind("residual",
         "y = body(x) + shortcut(x); the shortcut is the identity, or a 1×1 projection "
         "(+ batchnorm if the body has one) when the body changes the shape",
         {"layers": Arg(REQUIRED, None, "the body: a non-empty list of layers")}, "layers",
         _residual_shape, _residual, "residual: [conv: {filters: 8, padding: same}, relu]"),
    *(_activation_kind(name) for name in SPEC_ACTIVATIONS),
)  # fmt: skip

KINDS: dict[str, Kind] = {kind.name: kind for kind in _TABLE}
POOLS = ("maxpool", "avgpool", "concatpool")  # stride defaults to the kernel
ALWAYS_SHOWN = ("kernel",)  # to_dict writes it even at its default: a conv reads wrong without
