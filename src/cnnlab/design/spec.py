"""The architecture language: parse and validate a spec, compute its shapes analytically.

A spec is a name, an input shape (C, H, W) and a list of layers. A layer is a bare name
(``relu``) or a one-key mapping whose value is either the kind's *short form* (one number or
list) or its *long form* (a mapping of arguments)::

    name: fmnist-small
    input: [1, 28, 28]                                  # C, H, W
    layers:
      - conv: {filters: 32, kernel: 3, padding: same}   # long form
      - batchnorm                                       # bare
      - relu
      - maxpool: 2                                      # short form: kernel 2 (stride = kernel)
      - residual: [{conv: {filters: 32, padding: same}}, batchnorm, relu]
      - gap
      - linear: 10

Kinds, their arguments (defaults) and short form (``kind: value`` sets the starred one):

==================  =========================================================================
conv                filters*, kernel (3), stride (1), padding (0 | [h, w] | same | valid),
                    dilation (1), groups (1), bias (true). Sizes are an int or [h, w].
                    same: t = D(K − 1) zeros per axis, t // 2 before and the rest after, as
                    PyTorch's padding="same" (also at stride S > 1, giving ⌈I / S⌉)
maxpool, avgpool    kernel* (2), stride (= kernel), padding (0; at most half the kernel);
                    avgpool counts padding zeros in the mean, as PyTorch does by default
concatpool          kernel* (2), stride (= kernel): max and average side by side, 2C channels
adaptiveconcatpool  output_size* (1): (2C, s, s); add ``flatten`` before a linear layer
gap                 global average pool, (C, H, W) -> (C,)
flatten             (C, H, W) -> (C·H·W,)
linear              features*, bias (true); needs a flat input (after flatten or gap)
dropout             p* (0.5), 0 <= p < 1
batchnorm           BatchNorm2d on (C, H, W), BatchNorm1d on (F,)
residual            layers*: y = body(x) + shortcut(x), see :func:`skip_projection`
relu, sigmoid, tanh; leaky_relu slope* (0.01); elu alpha* (1.0); gelu approximate* (none|tanh)
==================  =========================================================================

Sources :func:`load_spec` accepts: a :class:`Spec`; a dict; a preset name (:func:`preset_names`);
a path (``str`` or ``Path``) to a ``.yaml``/``.yml``/``.json`` file; or spec *text*: a string
that contains a newline or starts with ``{`` is parsed as YAML (JSON is a subset), never
looked up as a file. Preset names win over same-named files (write ``./mlp`` for the file).

Every error is a :class:`SpecError` naming where and what, e.g.
``layer 4 (conv): kernel 7 exceeds its padded input 5×5``. The index is 0-based and equals the
module name in the built ``nn.Sequential``; a layer inside a residual body is ``layer 5.2``.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import operator
import os
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cnnlab import geometry
from cnnlab.errors import SpecError

__all__ = [
    "KINDS",
    "Layer",
    "Shape",
    "Spec",
    "layer_shapes",
    "load_spec",
    "preset_names",
    "shapes",
    "skip_projection",
]

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) for flat features


# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer: its kind and its arguments (read-only; all defaults filled in by load_spec).

    A residual layer's ``args["layers"]`` is the tuple of its body's Layers.
    """

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    def __hash__(self) -> int:
        return hash((self.kind, tuple(sorted(self.args.items(), key=lambda kv: kv[0]))))

    def __reduce__(self):  # a mappingproxy cannot be pickled or deep-copied; a dict can
        return (Layer, (self.kind, dict(self.args)))

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
            if key == "stride" and self.kind in _POOLS and value == self.args.get("kernel"):
                continue  # a pool's stride defaults to its kernel
            if key in defaults and value == defaults[key] and key not in _ALWAYS_SHOWN:
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
class Spec:
    """A network: name, input shape (C, H, W) and layers, in order.

    Build one with :func:`load_spec` (which validates it); ``to_dict``/``to_yaml`` write it
    back in the spec language, and ``load_spec(spec.to_yaml()) == spec``.
    """

    name: str
    input: tuple[int, int, int]
    layers: tuple[Layer, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", tuple(self.input))
        object.__setattr__(self, "layers", tuple(self.layers))

    def to_dict(self) -> dict:
        """Plain, JSON-ready dict in the spec language (lists, not tuples)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["input"] = list(self.input)
        out["layers"] = [layer.to_obj() for layer in self.layers]
        return out

    def to_yaml(self) -> str:
        """YAML text, one layer per line (flow style for each layer's arguments)."""
        data = self.to_dict()
        data["input"] = _Flow(data["input"])
        data["layers"] = _flow_args(data["layers"])
        return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# --- argument checkers: value -> canonical value, or _Invalid(message) -------------------------


class _Invalid(Exception):
    """An argument's value is wrong; the caller adds which layer and argument."""


_REQUIRED = object()  # marks an argument without default
_LARGEST = 2**31 - 1  # the largest size, stride, count... a spec may give
_show = reprlib.Repr()
_show.maxstring = _show.maxother = 40


def _int(value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise _Invalid(f"must be an integer >= {minimum}, got {_show.repr(value)}") from None
    if value < minimum:
        raise _Invalid(f"must be an integer >= {minimum}, got {value}")
    if value > _LARGEST:  # torch sizes are int64; and huge ints cannot even be printed
        raise _Invalid(f"must be at most {_LARGEST:,}, got a {value.bit_length()}-bit integer")
    return value


def _pair(value: Any, minimum: int) -> int | tuple[int, int]:
    """An int, or an [h, w] pair (kept as a tuple unless both are equal)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise _Invalid(f"must be an integer or an [h, w] pair, got {_show.repr(value)}")
        h, w = _int(value[0], minimum), _int(value[1], minimum)
        return h if h == w else (h, w)
    return _int(value, minimum)


def _positive(value: Any) -> int:
    return _int(value, 1)


def _size(value: Any) -> int | tuple[int, int]:
    return _pair(value, 1)


def _nonneg_size(value: Any) -> int | tuple[int, int]:
    return _pair(value, 0)


def _conv_padding(value: Any) -> int | tuple[int, int] | str:
    if isinstance(value, str):  # "valid" is no padding; "same" is resolved per axis later
        if value not in ("same", "valid"):
            raise _Invalid(f"must be an integer, an [h, w] pair, same or valid, got {value!r}")
        return 0 if value == "valid" else "same"
    return _pair(value, 0)


def _pool_stride(value: Any) -> int | tuple[int, int] | None:
    return None if value is None else _pair(value, 1)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_show.repr(value)}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", value):
        raise _Invalid(f"must be a number, got the text {value!r}: YAML 1.1 wants 1.0e-3, not 1e-3")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _Invalid(f"must be a number, got {_show.repr(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if not math.isfinite(value):
        raise _Invalid(f"must be a finite number, got {value}")
    return value


def _probability(value: Any) -> float:
    p = _number(value)
    if not 0 <= p < 1:
        raise _Invalid(f"must be in [0, 1), got {p}")
    return p


def _approximation(value: Any) -> str:
    if not isinstance(value, str) or value not in ("none", "tanh"):
        raise _Invalid(f"must be none or tanh, got {_show.repr(value)}")
    return value


# --- the kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arg:
    default: Any
    check: Callable[[Any], Any]


@dataclass(frozen=True)
class Kind:
    """What the language knows about one kind: its arguments and which one the short form sets."""

    args: Mapping[str, _Arg]
    short: str | None = None


_POOL = Kind(
    {
        "kernel": _Arg(2, _size),
        "stride": _Arg(None, _pool_stride),
        "padding": _Arg(0, _nonneg_size),
    },
    short="kernel",
)
_NONE = Kind({})

KINDS: dict[str, Kind] = {
    "conv": Kind(
        {
            "filters": _Arg(_REQUIRED, _positive),
            "kernel": _Arg(3, _size),
            "stride": _Arg(1, _size),
            "padding": _Arg(0, _conv_padding),
            "dilation": _Arg(1, _size),
            "groups": _Arg(1, _positive),
            "bias": _Arg(True, _flag),
        },
        short="filters",
    ),
    "maxpool": _POOL,
    "avgpool": _POOL,
    "concatpool": Kind(
        {"kernel": _Arg(2, _size), "stride": _Arg(None, _pool_stride)}, short="kernel"
    ),
    "adaptiveconcatpool": Kind({"output_size": _Arg(1, _size)}, short="output_size"),
    "gap": _NONE,
    "flatten": _NONE,
    "linear": Kind(
        {"features": _Arg(_REQUIRED, _positive), "bias": _Arg(True, _flag)}, short="features"
    ),
    "dropout": Kind({"p": _Arg(0.5, _probability)}, short="p"),
    "batchnorm": _NONE,
    "residual": Kind({"layers": _Arg(_REQUIRED, None)}, short="layers"),
    "relu": _NONE,
    "leaky_relu": Kind({"slope": _Arg(0.01, _number)}, short="slope"),
    "elu": Kind({"alpha": _Arg(1.0, _number)}, short="alpha"),
    "gelu": Kind({"approximate": _Arg("none", _approximation)}, short="approximate"),
    "sigmoid": _NONE,
    "tanh": _NONE,
}
_POOLS = ("maxpool", "avgpool", "concatpool")
_ALWAYS_SHOWN = ("kernel",)  # to_dict writes it even at its default: a conv reads wrong without
_EXAMPLES = {"conv": "conv: 32", "linear": "linear: 10", "residual": "residual: [conv: 8, relu]"}


def _suggest(word: Any, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1) if isinstance(word, str) else []
    return f" (did you mean {close[0]}?)" if close else ""


def _parse_layer(obj: Any, index: str) -> Layer:
    """One layer from its spec-language form; `index` is its name ("4", or "5.2" if nested)."""
    if isinstance(obj, Layer):
        obj = obj.to_obj()
    if isinstance(obj, str):
        name, value = obj, None
    elif isinstance(obj, Mapping) and len(obj) == 1:
        ((name, value),) = obj.items()
    else:
        raise SpecError(
            f"layer {index}: expected a name like `relu` or a one-key mapping like "
            f"`maxpool: 2`, got {_show.repr(obj)}"
        )
    if not isinstance(name, str) or name not in KINDS:
        raise SpecError(
            f"layer {index} ({_show.repr(name)}): unknown kind{_suggest(name, list(KINDS))}; "
            f"valid kinds: {', '.join(KINDS)}"
        )
    where = f"layer {index} ({name})"
    kind = KINDS[name]
    if value is None:
        given = {}
    elif isinstance(value, Mapping):
        given = dict(value)
    elif kind.short is None:
        raise SpecError(
            f"{where}: takes no arguments, got {_show.repr(value)}; write just `{name}`"
        )
    else:
        given = {kind.short: value}

    unknown = [key for key in given if key not in kind.args]
    if unknown:
        valid = ", ".join(kind.args) if kind.args else "none"
        raise SpecError(
            f"{where}: unknown argument {_show.repr(unknown[0])}"
            f"{_suggest(unknown[0], list(kind.args))}; valid arguments: {valid}"
        )
    args = {}
    for key, arg in kind.args.items():
        if key not in given:
            if arg.default is _REQUIRED:
                example = _EXAMPLES.get(name, f"{name}: {{{key}: ...}}")
                raise SpecError(f"{where}: needs `{key}`, e.g. `{example}`")
            args[key] = arg.default
        elif key == "layers":
            args[key] = _parse_body(given[key], index, where)
        else:
            try:
                args[key] = arg.check(given[key])
            except _Invalid as err:
                raise SpecError(f"{where}: {key} {err}") from None
    if name in _POOLS and args["stride"] is None:
        args["stride"] = args["kernel"]
    return Layer(name, args)


def _parse_body(value: Any, index: str, where: str) -> tuple[Layer, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(
            f"{where}: layers must be a non-empty list of layers, got {_show.repr(value)}"
        )
    return tuple(_parse_layer(obj, f"{index}.{i}") for i, obj in enumerate(value))


# --- shapes ----------------------------------------------------------------------------------


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape)) if len(shape) == 3 else f"{shape[0]} features"


def _hw(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def _dims(value: int | tuple[int, int]) -> str:
    """3 -> "3", (3, 5) -> "3×5": how a size argument reads in a message."""
    return str(value) if isinstance(value, int) else "×".join(map(str, value))


def _maps(shape: Shape, where: str) -> Shape:
    if len(shape) != 3:
        raise SpecError(
            f"{where}: needs feature maps (C, H, W) but its input is flat ({_fmt(shape)}); "
            "put it before flatten/gap"
        )
    return shape


def _windows(
    where: str,
    shape: Shape,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
    dilation: int | tuple[int, int] = 1,
) -> tuple[int, int]:
    """Output (H, W) of a sliding window: O = ⌊(I + before + after − D(K − 1) − 1)/S⌋ + 1 (§2.2).

    The same formula as geometry.conv_output_size, with the padding of each side given apart
    (PyTorch's 'same' puts the odd pixel of an even kernel after).
    """
    padded = tuple(size + b + a for size, (b, a) in zip(shape[1:], pads, strict=True))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(_hw(kernel), _hw(dilation), strict=True))
    if any(e > p for e, p in zip(extent, padded, strict=True)):
        spans = "" if dilation == 1 else f" (dilation {_dims(dilation)}: spans {_dims(extent)})"
        raise SpecError(
            f"{where}: kernel {_dims(kernel)}{spans} exceeds its padded input {_dims(padded)}, "
            "so the output would be below 1×1; use a smaller kernel, more padding, or less "
            "downsampling before it"
        )
    return tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, _hw(stride), strict=True))


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
    h, w = _windows(where, shape, a["kernel"], a["stride"], pads, a["dilation"])
    return (a["filters"], h, w)


def _pool_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    c, _, _ = _maps(shape, where)
    padding = a.get("padding", 0)
    for k, p in zip(_hw(a["kernel"]), _hw(padding), strict=True):
        if 2 * p > k:  # PyTorch refuses it: a window could lie wholly in the padding
            raise SpecError(
                f"{where}: padding {_dims(padding)} is more than half the kernel "
                f"{_dims(a['kernel'])}; PyTorch pools allow at most kernel // 2"
            )
    h, w = _windows(where, shape, a["kernel"], a["stride"], tuple((p, p) for p in _hw(padding)))
    return (c, h, w)


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
            f"{where}: its input is feature maps {_fmt(shape)}, not flat features; "
            "add `flatten` or `gap` before it"
        )
    return (a["features"],)


def _same_shape(a: Mapping, shape: Shape, where: str) -> Shape:
    return shape


def _residual_shape(a: Mapping, shape: Shape, where: str, index: str) -> Shape:
    out = layer_shapes(a["layers"], shape, prefix=f"{index}.")[-1]
    skip_projection(shape, out, where)  # raises when no shortcut fits
    return out


_SHAPES: dict[str, Callable[[Mapping, Shape, str], Shape]] = {
    "conv": _conv_shape,
    "maxpool": _pool_shape,
    "avgpool": _pool_shape,
    "concatpool": _concatpool_shape,
    "adaptiveconcatpool": _adaptive_shape,
    "gap": _gap_shape,
    "flatten": _flatten_shape,
    "linear": _linear_shape,
}  # the rest keep their input's shape; residual is walked by layer_shapes


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
            f"{where}: the body turns {_fmt(inp)} into {_fmt(out)}; a residual body must "
            "keep feature maps as maps (move flatten/gap after the block)"
        )
    if len(inp) == 1:
        return (1, 1)
    strides = []
    for size, target in zip(inp[1:], out[1:], strict=True):
        # ⌊(size − 1)/s⌋ = target − 1 holds for s in ((size−1)/target, (size−1)/(target−1)]
        stride = (size - 1) // target + 1
        if target > size or (size - 1) // stride + 1 != target:
            raise SpecError(
                f"{where}: the body maps {_fmt(inp)} to {_fmt(out)}, and no strided 1×1 "
                f"projection turns {inp[1]}×{inp[2]} into {out[1]}×{out[2]}; make the body "
                "keep the size, or downsample by an integer stride"
            )
        strides.append(stride)
    return tuple(strides)


def layer_shapes(layers: Sequence[Layer], input: Shape, prefix: str = "") -> list[Shape]:
    """Shape after each layer of `layers`, starting from `input`; SpecError if one cannot run.

    `prefix` is put before each index in error messages ("5." for the body of layer 5).
    """
    shape, out = tuple(input), []
    for i, layer in enumerate(layers):
        where = f"layer {prefix}{i} ({layer.kind})"
        if layer.kind == "residual":
            shape = _residual_shape(layer.args, shape, where, f"{prefix}{i}")
        else:
            shape = _SHAPES.get(layer.kind, _same_shape)(layer.args, shape, where)
        if any(n < 1 for n in shape):  # e.g. adaptive output sizes are checked here too
            raise SpecError(f"{where}: output {_fmt(shape)} is below 1×1")
        out.append(shape)
    return out


def shapes(spec: Spec | Mapping | str | Path, input: Shape | None = None) -> list[Shape]:
    """Analytic shape after each top-level layer: (C, H, W) for maps, (F,) once flat.

    Computed from the formulas alone (no model is built). `input` overrides spec.input, e.g.
    to check a GAP network at another image size.

    >>> shapes(load_spec("fmnist-tf"))[:3]
    [(32, 28, 28), (32, 28, 28), (32, 14, 14)]
    """
    spec = load_spec(spec)
    if input is not None:
        input = _parse_input(input)
    return layer_shapes(spec.layers, spec.input if input is None else input)


# --- loading ---------------------------------------------------------------------------------


_PRESETS = resources.files("cnnlab.design") / "presets"
_TOP_KEYS = ("name", "description", "input", "layers")


def preset_names() -> list[str]:
    """Names of the presets shipped in cnnlab/design/presets/*.yaml, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in _PRESETS.iterdir() if p.name.endswith(".yaml"))


def _parse_input(value: Any) -> tuple[int, int, int]:
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    try:
        if ok:
            return tuple(_int(v, 1) for v in value)
    except _Invalid:
        pass
    raise SpecError(
        f"input must be [C, H, W], three positive integers (e.g. [1, 28, 28]), "
        f"got {_show.repr(value)}"
    )


def _from_mapping(data: Any, default_name: str) -> Spec:
    if not isinstance(data, Mapping):
        raise SpecError(
            f"a spec must be a mapping with name, input and layers; got {_show.repr(data)}"
        )
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise SpecError(
            f"unknown spec key {_show.repr(unknown[0])}{_suggest(unknown[0], _TOP_KEYS)}; "
            f"valid keys: {', '.join(_TOP_KEYS)}"
        )
    name = data.get("name", default_name)
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise SpecError(f"spec {key} must be a string, got {_show.repr(value)}")
    if "input" not in data:
        raise SpecError("the spec has no input; add e.g. `input: [1, 28, 28]` (C, H, W)")
    input = _parse_input(data["input"])
    layers = data.get("layers")
    if not isinstance(layers, (list, tuple)):
        raise SpecError(f"layers must be a list of layers, got {_show.repr(layers)}")
    if not layers:
        raise SpecError("layers is empty; a spec needs at least one layer")
    parsed = tuple(_parse_layer(obj, str(i)) for i, obj in enumerate(layers))
    spec = Spec(name, input, parsed, description)
    layer_shapes(spec.layers, spec.input)  # validate the geometry now, not at build time
    return spec


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a repeated key (plain YAML keeps the last one silently:
    `filters: 8` then `filters: 16` would build a 16-filter conv without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: merged keys may be overridden, as YAML allows
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _json_unique(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads' object_pairs_hook: a repeated key is an error, not the last one winning."""
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"the key {k!r} appears twice in one object")
    return dict(pairs)


def _parse_text(text: str, origin: str, as_json: bool = False) -> Any:
    """YAML (or JSON) text -> Python data; SpecError with the line and column on bad syntax."""
    if as_json:
        try:
            return json.loads(text, object_pairs_hook=_json_unique)
        except json.JSONDecodeError as err:
            raise SpecError(
                f"{origin}, line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}"
            ) from None
        except ValueError as err:  # e.g. an integer longer than Python will parse
            raise SpecError(f"{origin}: invalid JSON: {err}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{origin}{at}: invalid YAML: {err.problem or err.context}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as err:
        # PyYAML's constructors raise plain ValueError on impossible scalars (a 13th month)
        raise SpecError(f"{origin}: invalid YAML: {err}") from None


def _read_file(path: Path) -> Spec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read spec file {path}: {err}") from None
    data = _parse_text(text, f"spec file {path}", as_json=path.suffix.lower() == ".json")
    try:
        return _from_mapping(data, path.stem)
    except SpecError as err:
        line = _layer_line(text, str(err))
        raise SpecError(f"{path}{'' if line is None else f', line {line}'}: {err}") from None


def _layer_line(text: str, message: str) -> int | None:
    """The line of the layer a message names ("layer 5.2 (conv): ..."), if YAML can tell."""
    match = re.match(r"layer (\d+(?:\.\d+)*) ", message)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # JSON is YAML too
    except (yaml.YAMLError, ValueError, RecursionError):
        return None
    if match is None or not isinstance(node, yaml.MappingNode):
        return None
    node = next((v for k, v in node.value if k.value == "layers"), None)
    for part in match.group(1).split("."):
        if isinstance(node, yaml.MappingNode):  # a residual: {residual: [...]} or {layers: [...]}
            node = node.value[0][1] if len(node.value) == 1 else None
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == "layers"), None)
        if not isinstance(node, yaml.SequenceNode) or int(part) >= len(node.value):
            return None
        node = node.value[int(part)]
    return node.start_mark.line + 1


def _from_string(source: str) -> Spec:
    if not source.strip():
        raise SpecError("the spec source is empty; give a preset name, a path or YAML text")
    if "\n" in source or source.lstrip().startswith("{"):
        return _from_mapping(_parse_text(source, "spec text"), "spec")
    if source in preset_names():
        return _from_mapping(_parse_text((_PRESETS / f"{source}.yaml").read_text(), source), source)
    path = Path(source)
    try:
        is_file = path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists()
    except (OSError, ValueError):  # a name too long, or with a NUL byte
        is_file = False
    if is_file:
        return _read_file(path)
    raise SpecError(
        f"{_show.repr(source)} is neither a preset ({', '.join(preset_names())}) nor a spec file "
        "(.yaml, .yml or .json)"
    )


def load_spec(source: Spec | Mapping | str | os.PathLike) -> Spec:
    """A validated Spec from a Spec, a dict, a preset name, a file path or YAML/JSON text.

    A string containing a newline or starting with ``{`` is spec text; otherwise a preset name
    if it is one, else a path. Without a ``name`` key the name is the file's stem (or "spec").
    Every default is filled in, so equal Specs build equal models. Raises SpecError (a
    ValueError) naming the layer and the rule broken; for a file, also the file and line.

    >>> load_spec("fmnist-tf").input
    (1, 28, 28)
    """
    try:
        if isinstance(source, Spec):
            return _from_mapping(source.to_dict(), source.name)
        if isinstance(source, Mapping):
            return _from_mapping(source, "spec")
        if isinstance(source, os.PathLike):
            return _read_file(Path(source))
        if isinstance(source, str):
            return _from_string(source)
    except RecursionError:
        raise SpecError("the spec nests too deeply (or refers to itself)") from None
    raise SpecError(
        "a spec source must be a Spec, a dict, a preset name, a path or YAML text; "
        f"got {type(source).__name__}"
    )


# --- writing YAML ------------------------------------------------------------------------------


class _Flow(list):
    """A list YAML writes on one line: [1, 28, 28]."""


class _FlowDict(dict):
    """A layer's arguments on one line: {filters: 32, kernel: 3}."""


class _Dumper(yaml.SafeDumper):
    """safe_dump plus the two one-line types; lists indented under their key, as DESIGN.md."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, True))
_Dumper.add_representer(
    _FlowDict, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, True)
)


def _flow_args(layers: list) -> list:
    """Layers for to_yaml: `- conv: {filters: 32, kernel: 3}`, a residual body as a block."""
    out = []
    for obj in layers:
        if isinstance(obj, dict):
            ((kind, value),) = obj.items()
            if kind == "residual":  # its only argument, so always the short form
                value = _flow_args(value)
            elif isinstance(value, dict):
                value = _FlowDict(
                    {k: _Flow(v) if isinstance(v, list) else v for k, v in value.items()}
                )
            elif isinstance(value, list):
                value = _Flow(value)
            obj = {kind: value}
        out.append(obj)
    return out
