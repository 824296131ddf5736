"""`--model-arg name=value`: each a keyword argument of a --model factory, its value a Python
literal (`ast.literal_eval`: numbers, quoted strings, tuples, lists, dicts, True/False/None).

A value that is no literal is told what the factory's parameter takes, as Python's signature
of it declares (`Declared`, given by the caller, which loads the factory): a number for
`classes: int` or `classes=10`, True or False for a bool, else quotes the shell keeps
(`--model-arg "act='gelu'"`).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from typing import Any

from cnnlab.errors import SpecError

__all__ = ["MAX_ARG_CHARS", "Declared", "declared_by", "literal", "parse_model_args"]

_ARG = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)
MAX_ARG_CHARS = 10_000  # literal_eval of a huge nested literal can exhaust the stack
Declared = Callable[[str], "tuple[str, Any] | None"]  # name -> (type name, default) or None


def _unknown(name: str) -> tuple[str, Any] | None:
    return None


def parse_model_args(
    ref: str, args: list[str] | tuple[str, ...], declared: Declared = _unknown
) -> tuple[tuple[str, Any], ...]:
    """`["width=16", "act='gelu'"]` -> `(("width", 16), ("act", "gelu"))`; SpecError on a
    malformed item, a repeated name or a value that is not a Python literal (its advice from
    `declared`, asked only then)."""
    parsed: dict[str, Any] = {}
    for item in args:
        match = _ARG.fullmatch(item.strip())
        if match is None:
            raise SpecError(
                f"--model {ref}: --model-arg {item!r} is not name=value (e.g. width=16)"
            )
        name = match["name"]
        if name in parsed:
            raise SpecError(f"--model {ref}: --model-arg {name} is given twice")
        parsed[name] = literal(name, match["value"], ref, declared)
    return tuple(parsed.items())


def literal(name: str, text: str, ref: str, declared: Declared = _unknown) -> Any:
    """One --model-arg's value text as the Python literal it is; SpecError with the advice."""
    if len(text) > MAX_ARG_CHARS:
        raise SpecError(f"--model {ref}: --model-arg {name} is longer than {MAX_ARG_CHARS} chars")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise SpecError(_not_literal(name, text, ref, declared(name))) from None


# what a parameter declared of these types takes, and an example when it has no default
_WANTS = {"int": ("a number", 10), "float": ("a number", 0.5), "bool": ("True or False", None)}


def _not_literal(name: str, text: str, ref: str, declared: tuple[str, Any] | None) -> str:
    """The advice for a --model-arg value that is no literal: a number, or True/False, when
    the factory declares the parameter so (quotes would pass it as text), else quotes the
    shell keeps."""
    if declared is not None and declared[0] in _WANTS:
        kind, default = declared
        wants, example = _WANTS[kind]
        factory = ref.rsplit(":", 1)[1]
        told = f"{kind}" if default is None else f"{kind}, default {default!r}"
        if example is None:  # a bool: both words
            fix = f"--model-arg {name}=True or {name}=False"
        else:
            fix = f"e.g. --model-arg {name}={example if default is None else default!r}"
        return (
            f"--model {ref}: --model-arg {name}={text!r} is not {wants}, which {factory}'s "
            f"{name} takes ({told}): {fix}"
        )
    return (
        f"--model {ref}: --model-arg {name}={text!r} is not a Python literal; quote "
        f"strings so the shell keeps the quotes: --model-arg \"{name}='{text}'\""
    )


def declared_by(factory: Any) -> Declared:
    """`Declared` of a factory (a function, or a class: its __init__), by Python's signature:
    (type name, default) of a parameter a keyword can set, its type from its annotation
    (`int`, or "int" quoted) else from its default; None when neither tells, or for a name
    it takes only by position."""

    def of(name: str) -> tuple[str, Any] | None:
        try:
            parameter = inspect.signature(factory).parameters.get(name)
        except (TypeError, ValueError):  # a builtin or C callable
            return None
        if parameter is None or parameter.kind not in (
            parameter.POSITIONAL_OR_KEYWORD,
            parameter.KEYWORD_ONLY,
        ):
            return None
        default = None if parameter.default is parameter.empty else parameter.default
        annotation = parameter.annotation
        kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if kind in ("int", "float", "bool", "str"):
            return kind, default
        return (type(default).__name__, default) if default is not None else None

    return of
