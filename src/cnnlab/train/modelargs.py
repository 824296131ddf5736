"""`--model-arg name=value`: each a keyword argument of a --model factory, its value a Python
literal (`ast.literal_eval`: numbers, quoted strings, tuples, lists, dicts, True/False/None).

A value that is no literal is told what the factory's parameter takes, as its source declares
it (read with ast; no code runs): a number for `classes: int` or `classes=10`, True or False
for a bool, else quotes the shell keeps (`--model-arg "act='gelu'"`).
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

from cnnlab.errors import SpecError

__all__ = ["MAX_ARG_CHARS", "literal", "parse_model_args"]

_ARG = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)
MAX_ARG_CHARS = 10_000  # literal_eval of a huge nested literal can exhaust the stack


def parse_model_args(ref: str, args: list[str] | tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """`["width=16", "act='gelu'"]` -> `(("width", 16), ("act", "gelu"))`; SpecError on a
    malformed item, a repeated name or a value that is not a Python literal."""
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
        parsed[name] = literal(name, match["value"], ref)
    return tuple(parsed.items())


def literal(name: str, text: str, ref: str) -> Any:
    """One --model-arg's value text as the Python literal it is; SpecError with the advice."""
    if len(text) > MAX_ARG_CHARS:
        raise SpecError(f"--model {ref}: --model-arg {name} is longer than {MAX_ARG_CHARS} chars")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise SpecError(_not_literal(name, text, ref)) from None


# what a parameter declared of these types takes, and an example when it has no default
_WANTS = {"int": ("a number", 10), "float": ("a number", 0.5), "bool": ("True or False", None)}


def _not_literal(name: str, text: str, ref: str) -> str:
    """The advice for a --model-arg value that is no literal: a number, or True/False, when
    the factory's source declares the parameter so (quotes would pass it as text), else
    quotes the shell keeps."""
    declared = _declared(ref, name)
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


def _declared(ref: str, name: str) -> tuple[str, Any] | None:
    """(type, default) of the factory's parameter `name` as its source writes it, read with
    ast (no code runs): `classes: int = 10` -> ("int", 10), `classes=10` -> ("int", 10); the
    factory a function or a class (its __init__) at the top of a .py file or of a module
    in the working directory. None when that cannot be told."""
    where, _, factory = ref.rpartition(":")
    try:
        if where.endswith(".py") or "/" in where or os.sep in where:
            file = Path(where).expanduser()
        elif "." not in where:  # a module in the working directory, where `python -m` looks
            file = Path.cwd() / f"{where}.py"
        else:
            return None  # finding pkg.module would run pkg's __init__
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, SyntaxError, ImportError, UnicodeDecodeError):
        return None
    for node in reversed(tree.body):  # the last definition of a name is the one imported
        if isinstance(node, ast.ClassDef) and node.name == factory:
            init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
            return _parameter(init[-1].args, name) if init else None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == factory:
            return _parameter(node.args, name)
    return None


def _parameter(args: ast.arguments, name: str) -> tuple[str, Any] | None:
    """(type, default) of one parameter a keyword can set (not a positional-only one, which
    --model-arg cannot pass): its annotation's builtin type, else its default's."""
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [
        *zip(args.args, defaults[len(args.posonlyargs) :], strict=True),
        *zip(args.kwonlyargs, args.kw_defaults, strict=True),
    ]
    for arg, default_node in pairs:
        if arg.arg != name:
            continue
        default = _constant(default_node)
        annotation = arg.annotation
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.Name(annotation.value)  # a quoted annotation: "int"
        if isinstance(annotation, ast.Name) and annotation.id in ("int", "float", "bool", "str"):
            return annotation.id, default
        if default is not None:
            return type(default).__name__, default
        return None
    return None


def _constant(node: ast.expr | None) -> Any:
    """A default's value when the source writes it as a literal (`10`, `-1`, `0.5`), else None."""
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
