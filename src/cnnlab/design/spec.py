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

The kinds, their arguments, defaults and short forms are records in
:mod:`cnnlab.design.kinds` (``KINDS``), listed with an example each in docs/spec.md.

Sources :func:`load_spec` accepts: a :class:`Spec`; a dict; a preset name (:func:`preset_names`);
a path (``str`` or ``Path``) to a ``.yaml``/``.yml``/``.json`` file; or spec *text*: a string
that contains a newline or starts with ``{`` is parsed as YAML (JSON is a subset), never
looked up as a file. Preset names win over same-named files (write ``./mlp`` for the file).

A spec is validated once, by load_spec, which also infers every layer's output shape
(``spec.shapes``); build and summary read them instead of validating again. Reading text is
:mod:`cnnlab.design.spectext` (limits, unique keys, YAML alias expansion).

Every error is a :class:`SpecError` naming where and what, e.g.
``layer 4 (conv): kernel 7 exceeds its padded input 5×5``. The index is 0-based and equals the
module name in the built ``nn.Sequential``; a layer inside a residual body is ``layer 5.2``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.design import arguments as check
from cnnlab.design.arguments import Invalid
from cnnlab.design.kinds import KINDS, POOLS, REQUIRED, Kind, Layer, Shape, infer, skip_projection
from cnnlab.design.presetfiles import preset_names, preset_path  # re-exported
from cnnlab.design.quote import quote
from cnnlab.design.spectext import MAX_TEXT, MAX_VALUES, dump, layer_line, parse_text
from cnnlab.errors import SpecError

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "MAX_LAYERS",
    "MAX_TEXT",
    "MAX_VALUES",
    "Kind",
    "Layer",
    "Shape",
    "Spec",
    "channels_last_note",
    "layer_shapes",
    "load_spec",
    "preset_names",
    "shapes",
    "skip_projection",
]

# --- the data --------------------------------------------------------------------------------

MAX_LAYERS = 10_000  # layers in one spec, bodies included (ResNet-152 has about 500)
MAX_DEPTH = 16  # residual blocks nested in one another


@dataclass(frozen=True)
class Spec:
    """A network: name, input shape (C, H, W) and layers, in order.

    Build one with :func:`load_spec`, which validates it once and sets every layer's output
    shape (``spec.shapes``); ``to_dict``/``to_yaml`` write it back in the spec language, and
    ``load_spec(spec.to_yaml()) == spec``.
    """

    name: str
    input: tuple[int, int, int]
    layers: tuple[Layer, ...]
    description: str = ""
    # Set by load_spec only; dataclasses.replace() makes an unchecked copy, as it should.
    _checked: bool = field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", tuple(self.input))
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """Output shape of each top-level layer, as load_spec inferred it."""
        if not self._checked:
            raise SpecError("this Spec was not validated; pass it through load_spec first")
        return tuple(layer.shape for layer in self.layers)

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
        return dump(self.to_dict())


# --- parsing a layer ---------------------------------------------------------------------------


class _Count:
    """Layers parsed so far in one spec, to stop at MAX_LAYERS before doing the work."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n
        if self.n > MAX_LAYERS:
            raise SpecError(
                f"the spec has more than {MAX_LAYERS:,} layers (bodies included), the limit "
                "(MAX_LAYERS); split the network or describe it in Python (--model)"
            )


def _folded(word: str) -> str:
    """A name as a comparison sees it: PyTorch's spellings (ReLU, LeakyReLU, MaxPool2d) and
    other cases or separators (Relu, leaky-relu) fold to the spec's (relu, leakyrelu, maxpool)."""
    word = word.lower().replace("_", "").replace("-", "")
    return word[:-2] if word.endswith(("1d", "2d")) else word


# Other libraries' names of the kinds (folded), which no spelling distance finds: Keras'
# Dense, GlobalAveragePooling2D, PyTorch's AdaptiveAvgPool2d (to 1×1: gap) ...
_KIND_ALIASES: dict[str, str | None] = {
    "dense": "linear",
    "fc": "linear",
    "bn": "batchnorm",
    "batchnormalization": "batchnorm",
    "globalavgpool": "gap",
    "globalaveragepooling": "gap",
    "adaptiveavgpool": "gap",
    "maxpooling": "maxpool",
    "averagepooling": "avgpool",
    # no kind computes these: no suggestion rather than the nearest spelling's (a windowed
    # maxpool for a global max, adaptiveconcatpool for AdaptiveMaxPool2d)
    "adaptivemaxpool": None,
    "globalmaxpool": None,
    "globalmaxpooling": None,
}


def _meant(word: Any, options: Sequence[str], aliases: Mapping[str, str | None] | None = None):
    """The option `word` was likely meant as, compared case- and separator-blind ('Relu' is
    relu, not elu; `aliases` maps other names, to None where no kind is near), else None."""
    if not isinstance(word, str) or len(word) > 100:
        return None
    if aliases and _folded(word) in aliases:
        return aliases[_folded(word)]
    folded = {_folded(option): option for option in options}
    close = difflib.get_close_matches(_folded(word), list(folded), n=1)
    return folded[close[0]] if close else None


def _suggest(
    word: Any, options: Sequence[str], aliases: Mapping[str, str | None] | None = None
) -> str:
    """' (did you mean X?)' for :func:`_meant`'s X, else ''."""
    meant = _meant(word, options, aliases)
    return "" if meant is None else f" (did you mean {meant}?)"


def _nesting_hint(obj: Any) -> str:
    """For `{conv: 32, kernel: 5}` (a kind and its arguments side by side, as YAML reads a
    layer whose arguments are indented like the kind): the long form to write instead."""
    if not isinstance(obj, Mapping):
        return ""
    named = [key for key in obj if isinstance(key, str) and key in KINDS]
    if len(named) != 1:
        return ""
    kind, value = KINDS[named[0]], obj[named[0]]
    rest = {key: v for key, v in obj.items() if key != kind.name}
    short = value is not None and not isinstance(value, Mapping)  # `conv: 32`
    if short and kind.short is None:
        return ""
    args = {kind.short: value} if short else dict(value or {})
    if not all(isinstance(key, str) and key in kind.args and key not in args for key in rest):
        return ""
    try:
        text = yaml.safe_dump({kind.name: {**args, **rest}}, default_flow_style=True, width=10**6)
    except yaml.YAMLError:  # a value given from Python that YAML cannot write (np.int64(5))
        return ""
    text = text.strip()[1:-1]  # the outer {} of a one-key mapping
    return f"; its arguments go inside it: `{text if len(text) <= 100 else text[:97] + '...'}`"


def _split(obj: Any, index: str) -> tuple[str, Any]:
    """A layer's (kind name, value): `relu` -> ("relu", None), `maxpool: 2` -> ("maxpool", 2)."""
    if isinstance(obj, Layer):
        obj = obj.to_obj()
    if isinstance(obj, str):
        name, value = obj, None
    elif isinstance(obj, Mapping) and len(obj) == 1:
        ((name, value),) = obj.items()
    else:
        raise SpecError(
            f"layer {index}: expected a name like `relu` or a one-key mapping like "
            f"`maxpool: 2`, got {quote(obj)}{_nesting_hint(obj)}"
        )
    if isinstance(name, str) and _folded(name) in ("softmax", "logsoftmax"):
        raise SpecError(
            f"layer {index} ({quote(name)}): a spec has no softmax layer: cnnlab applies softmax "
            "to the logits itself (in the cross-entropy loss, predict and the explorer); "
            "end the spec with its last linear layer"
        )
    if not isinstance(name, str) or name not in KINDS:
        meant = _suggest(name, list(KINDS), _KIND_ALIASES)
        raise SpecError(
            f"layer {index} ({quote(name)}): unknown kind{meant}; valid kinds: {', '.join(KINDS)}"
        )
    return name, value


def _given(kind: Kind, value: Any, where: str) -> dict:
    """The arguments a layer's value gives: none, its long form, or its short form."""
    if value is None:
        given = {}
    elif isinstance(value, Mapping):
        given = dict(value)
    elif kind.short is None:
        raise SpecError(
            f"{where}: takes no arguments, got {quote(value)}; write just `{kind.name}`"
        )
    else:
        given = {kind.short: value}
    unknown = [key for key in given if key not in kind.args]
    if unknown:
        valid = ", ".join(kind.args) if kind.args else "none"
        raise SpecError(
            f"{where}: unknown argument {quote(unknown[0])}"
            f"{_suggest(unknown[0], list(kind.args))}; valid arguments: {valid}"
        )
    return given


def _parse_layer(obj: Any, index: str, count: _Count) -> Layer:
    """One layer from its spec-language form; `index` is its name ("4", or "5.2" if nested)."""
    name, value = _split(obj, index)
    where = f"layer {index} ({name})"
    kind = KINDS[name]
    given = _given(kind, value, where)
    args = {}
    for key, arg in kind.args.items():
        if key not in given:
            if arg.default is REQUIRED:
                raise SpecError(f"{where}: needs `{key}`, e.g. `{kind.example}`")
            args[key] = arg.default
        elif arg.check is None:  # a residual's body
            args[key] = _parse_body(given[key], index, where, count)
        else:
            try:
                args[key] = arg.check(given[key])
            except Invalid as err:
                raise SpecError(f"{where}: {key} {err}") from None
    if name in POOLS and args["stride"] is None:
        args["stride"] = args["kernel"]
    return Layer(name, args)


def _parse_body(value: Any, index: str, where: str, count: _Count) -> tuple[Layer, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{where}: layers must be a non-empty list of layers, got {quote(value)}")
    if index.count(".") + 1 > MAX_DEPTH:
        raise SpecError(
            f"{where}: the spec nests too deeply: residual blocks more than {MAX_DEPTH} levels "
            "inside one another, the limit (MAX_DEPTH)"
        )
    count.add(len(value))
    return tuple(_parse_layer(obj, f"{index}.{i}", count) for i, obj in enumerate(value))


# --- shapes ----------------------------------------------------------------------------------


def layer_shapes(layers: Sequence[Layer], input: Shape, prefix: str = "") -> list[Shape]:
    """Shape after each layer of `layers`, starting from `input`; SpecError if one cannot run.

    `prefix` is put before each index in error messages ("5." for the body of layer 5).
    """
    return [layer.shape for layer in infer(layers, input, prefix)]


def shapes(spec: Spec | Mapping | str | Path, input: Shape | None = None) -> list[Shape]:
    """Analytic shape after each top-level layer: (C, H, W) for maps, (F,) once flat.

    Computed from the formulas alone (no model is built). `input` overrides spec.input, e.g.
    to check a GAP network at another image size.

    >>> shapes(load_spec("fmnist-tf"))[:3]
    [(32, 28, 28), (32, 28, 28), (32, 14, 14)]
    """
    spec = load_spec(spec)
    if input is None or _parse_input(input) == spec.input:
        return list(spec.shapes)  # inferred once, when the spec was loaded
    return layer_shapes(spec.layers, _parse_input(input))


# --- loading ---------------------------------------------------------------------------------


_TOP_KEYS = ("name", "description", "input", "layers")


def _parse_input(value: Any) -> tuple[int, int, int]:
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    try:
        if ok:
            return tuple(check.integer(v, 1) for v in value)
    except Invalid:
        pass
    raise SpecError(
        f"input must be [C, H, W], three positive integers (e.g. [1, 28, 28]), got {quote(value)}"
    )


def channels_last_note(input: Sequence[int], given_as: str = "input") -> str:
    """'' unless an input (a, b, c) reads as TensorFlow's (H, W, C): c is 1, 3 or 4 (gray, RGB,
    RGBA), and a×b has an image's sides, min(a, b) >= 8 (a first number under 8 is channels),
    and aspect, max(a, b) <= 4·min(a, b) ([12, 5000, 1]: 12 signals of 5,000 samples). Then
    how cnnlab reads it and what to write, as given: a spec's `input` or `--input C,H,W`.
    Such an input may still build (32 channels of 32×3 images)."""
    c, h, w = input
    if w not in (1, 3, 4) or min(c, h) < 8 or max(c, h) > 4 * min(c, h):
        return ""
    if given_as == "input":
        order, written, fix = "[C, H, W]", str(list(input)), f"[{w}, {c}, {h}]"
    else:
        order, written, fix = "C,H,W", f"{c},{h},{w}", f"{given_as} {w},{c},{h}"
    return (
        f"{given_as} is {order}, so {written} is {c} channels of {h}×{w} images; "
        f"a {c}×{h} image with {w} channel{'s' if w > 1 else ''} is {fix}"
    )


def _channels_last_hint(input: tuple[int, int, int]) -> str:
    """For an input written (H, W, C) that made a layer fail: channels_last_note, appended."""
    return f"; note: {note}" if (note := channels_last_note(input)) else ""


def _from_mapping(data: Any, default_name: str) -> Spec:
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec must be a mapping with name, input and layers; got {quote(data)}")
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise SpecError(
            f"unknown spec key {quote(unknown[0])}{_suggest(unknown[0], _TOP_KEYS)}; "
            f"valid keys: {', '.join(_TOP_KEYS)}"
        )
    name = data.get("name", default_name)
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise SpecError(f"spec {key} must be a string, got {quote(value)}")
    if "input" not in data:
        raise SpecError("the spec has no input; add e.g. `input: [1, 28, 28]` (C, H, W)")
    input = _parse_input(data["input"])
    layers = data.get("layers")
    if not isinstance(layers, (list, tuple)):
        raise SpecError(f"layers must be a list of layers, got {quote(layers)}")
    if not layers:
        raise SpecError("layers is empty; a spec needs at least one layer")
    count = _Count()
    count.add(len(layers))
    parsed = tuple(_parse_layer(obj, str(i), count) for i, obj in enumerate(layers))
    # The geometry is validated now, once, and the shapes ride along for build and summary.
    try:
        inferred = infer(parsed, input)
    except SpecError as err:
        raise SpecError(f"{err}{_channels_last_hint(input)}") from None
    spec = Spec(name, input, inferred, description)
    object.__setattr__(spec, "_checked", True)
    return spec


def _read_file(path: Path) -> Spec:
    try:
        if path.is_dir() and (path / "spec.yaml").is_file():  # `summary runs/fast`
            raise SpecError(f"{path} is a run directory, not a spec: give {path / 'spec.yaml'}")
        if path.is_dir() and (path / "config.json").is_file():  # a run of model code
            raise SpecError(
                f"{path} is a run directory without a spec.yaml (its model is code): give "
                "that code as --model FILE.py:FACTORY --input C,H,W (config.json names it)"
            )
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            raise SpecError(f"cannot read spec file {path}: it is not a regular file")
        if path.exists() and path.stat().st_size > 4 * MAX_TEXT:  # 4: UTF-8's widest char
            raise SpecError(
                f"spec file {path} is {path.stat().st_size:,} bytes, more than a spec may "
                f"be ({MAX_TEXT:,} characters, MAX_TEXT)"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read spec file {path}: {err}") from None
    data = parse_text(text, f"spec file {path}", as_json=path.suffix.lower() == ".json")
    try:
        return _from_mapping(data, path.stem)
    except SpecError as err:
        line = layer_line(text, str(err))
        raise SpecError(f"{path}{'' if line is None else f', line {line}'}: {err}") from None


def _refuse_code(source: str) -> None:
    """A model from code given where a spec goes (`train mynet.py:make_net`, `summary mynet.py`)
    is told to pass it as --model: the file was read as YAML ('invalid YAML: mapping values
    are not allowed'), the reference called neither a preset nor a spec file."""
    if ":" in source and not source.endswith((".yaml", ".yml", ".json")):
        if source.rpartition(":")[0].endswith(".py") or not Path(source).exists():
            raise SpecError(
                f"{quote(source)} is a model from code, not a spec: give it as --model {source}"
            )
    if source.endswith(".py"):
        raise SpecError(
            f"{quote(source)} is Python code, not a spec: give it as --model {source}:FACTORY "
            "(FACTORY: the function in it that returns your nn.Module)"
        )


def _from_string(source: str) -> Spec:
    if not source.strip():
        raise SpecError("the spec source is empty; give a preset name, a path or YAML text")
    if "\n" in source or source.lstrip().startswith("{"):
        return _from_mapping(parse_text(source, "spec text"), "spec")
    if source in preset_names():
        return _from_mapping(parse_text(preset_path(source).read_text(), source), source)
    # one key a line is no spec; `input:[1,28,28]` no key at all (YAML wants a space)
    key = re.match(rf"\s*({'|'.join(_TOP_KEYS)})\s*:(?:(\s|$)|(?=[^\w.]))", source)
    if key:
        space = "" if key[2] is not None else ", a space after each colon"
        raise SpecError(
            f"{quote(source)} is spec text on one line, which holds one key; a spec needs "
            f"input and layers{space}: {{input: [1, 28, 28], layers: [...]}}, or a .yaml file, "
            "a key a line"
        )
    _refuse_code(source)
    path = Path(source)
    try:
        is_file = path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists()
    except (OSError, ValueError):  # a name too long, or with a NUL byte
        is_file = False
    if is_file:
        return _read_file(path)
    meant = _meant(source, preset_names())
    raise SpecError(
        f"{quote(source)} is neither a preset ({', '.join(preset_names())}) nor a spec file "
        f"(.yaml, .yml or .json){'' if meant is None else f'; did you mean {meant}?'}"
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
            if source._checked:  # load_spec made it: valid, with its shapes
                return source
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
