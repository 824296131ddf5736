"""Spec text: reading YAML/JSON safely, and writing a spec back as YAML.

Reading refuses what would make a spec slow or its errors unreadable: text over MAX_TEXT
characters, a YAML document whose aliases expand beyond MAX_VALUES values (the "billion
laughs"), and a key given twice in one mapping (YAML would keep the last one silently).
Errors are SpecErrors naming the origin and, where the parser can tell, line and column.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from cnnlab.design.quote import quote
from cnnlab.errors import SpecError

__all__ = ["MAX_TEXT", "MAX_VALUES", "dump", "layer_line", "parse_text"]

MAX_TEXT = 2**19  # characters of spec text: parsing it takes at most about a second
# libyaml's parser when PyYAML has it: 10x faster (20,000 layers: 0.6 s against 6 s).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
MAX_VALUES = 1_000_000  # values a YAML document may expand to through its aliases


# --- reading -----------------------------------------------------------------------------------


class _UniqueKeyLoader(_SAFE_LOADER):
    """yaml.safe_load that refuses a repeated key (plain YAML keeps the last one silently:
    `filters: 8` then `filters: 16` would build a 16-filter conv without a word), and a
    number YAML 1.1 reads as octal (`_refuse_octal`, its message begins with `origin`)."""

    origin = "spec text"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: merged keys may be overridden, as YAML allows
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                message = f"the key {quote(key)} appears twice in one mapping"
                raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
            seen.add(key)
            _refuse_octal(value_node, str(key), self.origin)
        return super().construct_mapping(node, deep=deep)


def _refuse_octal(node: yaml.Node, key: str, origin: str) -> None:
    """SpecError for a number given to `key` (or in its list) that YAML 1.1 reads as octal and
    a reader as decimal (`010`: 8 or 10), naming its line and the number to write."""
    for scalar in node.value if isinstance(node, yaml.SequenceNode) else [node]:
        if scalar.tag != "tag:yaml.org,2002:int" or not _OCTAL.fullmatch(scalar.value):
            continue
        digits = scalar.value.replace("_", "")
        if int(digits, 8) != int(digits, 10):  # 00 to 07 read the same either way
            meant = f"{digits[0] if digits[0] in '+-' else ''}{int(digits.lstrip('+-'))}"
            mark = scalar.start_mark
            raise SpecError(
                f"{origin}, line {mark.line + 1}, column {mark.column + 1}: {key}: "
                f"{scalar.value} is the octal number {int(digits, 8)} to YAML 1.1; write "
                f'{meant}, not {scalar.value} (or "{scalar.value}" in quotes, for text)'
            )


# YAML 1.1 reads yes/no/on/off as booleans (`bias: no` would be false without a word, a
# `name: off` would be the bool False); a spec takes only true and false, as YAML 1.2 and
# JSON do, so those words stay text and the argument's check names them (`write false`).
# Likewise YAML 1.1's base-60 numbers (`1:30` is 90) and dates (`2026-12-01`) stay text, as
# in YAML 1.2: no spec value is either, so a `name: 1:30` is the text meant, and a
# `filters: 1:30` is refused by its check quoting '1:30', not built with 90 filters.
_RETYPED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rule) for tag, rule in resolvers if tag not in (*_RETYPED, _TIMESTAMP)]
    for first, resolvers in _SAFE_LOADER.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_UniqueKeyLoader.add_implicit_resolver(  # PyYAML's, without its base-60 form
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(?:0b[0-1_]+|0[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_UniqueKeyLoader.add_implicit_resolver(  # PyYAML's, without its base-60 form; exponents as
    "tag:yaml.org,2002:float",  # YAML 1.2, JSON and Python write them (1e-3, 1.0e3)
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
# YAML 1.1 reads a number with a leading zero as octal (`stride: 010` is 8), YAML 1.2 and a
# reader as decimal (10), Python and JSON refuse it: where the two readings differ the spec is
# refused, naming the key and the number to write (`_refuse_octal`).
_OCTAL = re.compile(r"[-+]?0[0-7_]+")


def _json_unique(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads' object_pairs_hook: a repeated key is an error, not the last one winning."""
    out = dict(pairs)
    if len(out) < len(pairs):  # one pass, not keys.count per key: 40,000 keys took minutes
        seen: set = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"the key {quote(k)} appears twice in one object")
            seen.add(k)
    return out


def parse_text(text: str, origin: str, as_json: bool = False) -> Any:
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
    if len(text) > MAX_TEXT:
        raise SpecError(
            f"{origin} is {len(text):,} characters, more than the limit of {MAX_TEXT:,} "
            "(MAX_TEXT); a spec that large is not meant to be written by hand"
        )
    if text.lstrip().startswith("{"):  # JSON: YAML 1.1 would read its 1e-3 as the text "1e-3"
        try:
            return json.loads(text, object_pairs_hook=_json_unique)
        except (ValueError, RecursionError):
            pass  # YAML's flow style ({input: [1, 28, 28], ...}), or bad JSON: YAML says where
    try:
        return _load_yaml(text, origin)
    except SpecError:  # a ValueError too, but already says what is wrong
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{origin}{at}: invalid YAML: {err.problem or err.context}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as err:
        # PyYAML's constructors raise plain ValueError on impossible scalars (a 13th month)
        raise SpecError(f"{origin}: invalid YAML: {quote(str(err), 200)}") from None


def _load_yaml(text: str, origin: str) -> Any:
    """yaml.load with unique keys, refusing a document its aliases blow up (see below)."""
    loader = _UniqueKeyLoader(text)
    loader.origin = origin
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, origin)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, origin: str) -> None:
    """Refuse a YAML document whose aliases expand it beyond MAX_VALUES values.

    An alias (`*a`) repeats its anchor's whole subtree: ten levels of ten aliases each (the
    "billion laughs") are 10^10 values in a few hundred bytes. Python shares the repeated
    objects, so loading is cheap, but every walk over the result (the parser, a message
    quoting it) is not. Each node's expanded size is counted once (memoised by identity).
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a node inside itself (a recursive alias) counts once here
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        if n > MAX_VALUES:
            raise SpecError(
                f"{origin}: its YAML aliases (*name) expand it to more than {MAX_VALUES:,} "
                "values, the limit (MAX_VALUES); write the layers out instead"
            )
        sizes[id(node)] = n
        return n

    size(root)


def layer_line(text: str, message: str) -> int | None:
    """The line of the layer a message names ("layer 5.2 (conv): ..."), if YAML can tell."""
    match = re.match(r"layer (\d+(?:\.\d+)*)[ :]", message)  # "layer 4 (conv): ", "layer 4: "
    try:
        node = yaml.compose(text, Loader=_SAFE_LOADER)  # JSON is YAML too
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


def dump(data: dict) -> str:
    """A spec's dict (Spec.to_dict) as YAML text, one layer per line."""
    data = {**data, "input": _Flow(data["input"]), "layers": _flow_args(data["layers"])}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


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
