"""`--model-arg name=value`: each a keyword argument of a --model factory, its value a Python
literal (`ast.literal_eval`: numbers, quoted strings, tuples, lists, dicts, True/False/None).

A value that is no literal is told what the factory's parameter takes, as Python's signature
of it declares (`Declared`, given by the caller, which loads the factory): a number for
`classes: int` or `classes=10`, True or False for a bool, else quotes the shell keeps
(`--model-arg "act='gelu'"`). A literal the parameter's annotation refuses (`width=16.5`
for `width: int`, `fits`) is refused with an example that fits, before the factory runs
into an error of its own (torch's "out_channels must be divisible by groups").
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from cnnlab.design.quote import quote
from cnnlab.errors import SpecError

__all__ = [
    "MAX_ARG_CHARS",
    "Declaration",
    "Declared",
    "declared_by",
    "fits",
    "literal",
    "parse_model_args",
    "unlike_defaults",
]

_ARG = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)
MAX_ARG_CHARS = 10_000  # literal_eval of a huge nested literal can exhaust the stack


class Declaration(NamedTuple):
    """What a factory declares of one parameter: `kind`, the type its advice names ("int",
    "float", "bool", "str", else its default's type or ""), `default` (None without one;
    `has_default` tells), `annotation` as Python evaluates it (`empty`: none, or one that
    does not evaluate)."""

    kind: str
    default: Any
    annotation: Any = inspect.Parameter.empty
    has_default: bool = False


Declared = Callable[[str], "Declaration | None"]  # a parameter's name -> its Declaration


def _unknown(name: str) -> Declaration | None:
    return None


def parse_model_args(
    ref: str, args: list[str] | tuple[str, ...], declared: Declared = _unknown
) -> tuple[tuple[str, Any], ...]:
    """`["width=16", "act='gelu'"]` -> `(("width", 16), ("act", "gelu"))`; SpecError on a
    malformed item, a repeated name, a value that is not a Python literal, or one that does
    not fit the parameter's annotation (`declared` tells it)."""
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
        _refuse_unfit(name, parsed[name], ref, declared(name))
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


def _not_literal(name: str, text: str, ref: str, declared: Declaration | None) -> str:
    """The advice for a --model-arg value that is no literal: a number, or True/False, when
    the factory declares the parameter so (quotes would pass it as text), else quotes the
    shell keeps. The value is shown as it came (`act=gelu`): its repr, `act='gelu'`, read as
    the quoted form the advice then asks for."""
    if declared is not None and declared[0] in _WANTS:
        kind, default = declared.kind, declared.default
        wants, example = _WANTS[kind]
        factory = ref.rsplit(":", 1)[1]
        told = f"{kind}" if default is None else f"{kind}, default {default!r}"
        if example is None:  # a bool: both words
            fix = f"--model-arg {name}=True or {name}=False"
        else:
            fix = f"e.g. --model-arg {name}={example if default is None else default!r}"
        return (
            f"--model {ref}: --model-arg {name}={text} is not {wants}, which {factory}'s "
            f"{name} takes ({told}): {fix}"
        )
    return (
        f"--model {ref}: --model-arg {name}={text} is not a Python literal; quote "
        f"strings so the shell keeps the quotes: --model-arg \"{name}='{text}'\""
    )


def declared_by(factory: Any) -> Declared:
    """`Declared` of a factory (a function, or a class: its __init__), by Python's signature:
    the Declaration of a parameter a keyword can set, its annotation evaluated where the
    factory's module defines its names (`from __future__ import annotations` leaves them
    text); None when neither annotation nor default tells, or for a name it takes only by
    position."""

    def of(name: str) -> Declaration | None:
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
        annotation = _evaluated(parameter.annotation, factory)
        kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if kind not in ("int", "float", "bool", "str"):
            kind = "" if default is None else type(default).__name__
        if isinstance(annotation, str):  # a name its module does not define: not checked
            annotation = parameter.empty
        if not kind and annotation is parameter.empty:
            return None
        has_default = parameter.default is not parameter.empty
        return Declaration(kind, default, annotation, has_default)

    return of


# names an annotation written as text may use without its module importing them
_TYPING = {n: getattr(typing, n) for n in ("Any", "List", "Literal", "Optional", "Tuple", "Union")}


def _evaluated(annotation: Any, factory: Any) -> Any:
    """An annotation written as text ("int", or any under `from __future__ import
    annotations`) as Python evaluates it in the factory's module; the text when it does not
    evaluate there (a name imported only for type checkers)."""
    if not isinstance(annotation, str):
        return annotation
    function = factory.__init__ if isinstance(factory, type) else factory
    try:
        namespace = {**_TYPING, **getattr(inspect.unwrap(function), "__globals__", {})}
        return eval(annotation, namespace)  # noqa: S307 - the user's own code, run anyway
    except Exception:  # any error of the user's annotation: it is left unchecked
        return annotation


# --- a literal against the parameter's annotation ------------------------------------------------

_EXACT: dict[Any, Callable[[Any], bool]] = {
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),  # True is no width
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),  # 2 is 2.0
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    type(None): lambda v: v is None,
}
_LITERALS = (int, float, bool, str, bytes, type(None))  # what ast.literal_eval gives


def fits(value: Any, annotation: Any) -> bool | None:
    """Whether a --model-arg literal fits a parameter's annotation: True, False, or None
    where the annotation is none that is checked exactly (none, Any, a class, a Callable).

        int: an int, not a bool          float: an int or a float, not a bool
        bool, str, None: that exactly    X | Y, Optional[X]: fits one of them
        tuple[X, ...], list[X]: that container, each item fitting X
        tuple[X, Y]: a tuple of two, fitting X and Y     Literal[a, b]: a or b, of its type
    """
    annotation = type(None) if annotation is None else annotation
    if isinstance(annotation, type) and annotation in _EXACT:
        return _EXACT[annotation](value)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (tuple, list) or (origin in (tuple, list) and not args):
        return isinstance(value, origin or annotation)
    if origin is typing.Annotated:
        return fits(value, args[0])
    if origin is typing.Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return True
        return False if all(type(a) in _LITERALS for a in args) else None
    if origin in (typing.Union, types.UnionType):
        return _any([fits(value, a) for a in args])
    if origin in (tuple, list):
        if not isinstance(value, origin):
            return False
        if origin is list or args[-1] is Ellipsis:
            return _all([fits(item, args[0]) for item in value])
        if len(value) != len(args):
            return False
        return _all([fits(v, a) for v, a in zip(value, args, strict=True)])
    return None


def _any(found: list[bool | None]) -> bool | None:
    return True if True in found else (None if None in found else False)


def _all(found: list[bool | None]) -> bool | None:
    return False if False in found else (None if None in found else True)


def _refuse_unfit(name: str, value: Any, ref: str, declared: Declaration | None) -> None:
    """SpecError when the literal does not fit the parameter's annotation (`fits`), naming
    the argument, its value, the declaration and an example that fits."""
    if declared is None or _takes(value, declared) is not False:
        return
    factory = ref.rsplit(":", 1)[1]
    written = inspect.formatannotation(declared.annotation)
    default = "" if declared.default is None else f" = {quote(declared.default)}"
    example = _example(value, declared.annotation, declared.default)
    fix = "" if example is _NONE else f"; e.g. --model-arg {_shell(f'{name}={example!r}')}"
    raise SpecError(
        f"--model {ref}: --model-arg {name}={quote(value)} ({_a(value)}) does not fit "
        f"{factory}'s {name}: {written}{default}{fix}"
    )


def _takes(value: Any, declared: Declaration) -> bool | None:
    """`fits`, or True for the parameter's own default, which the factory gives itself
    whatever its annotation says (`width: int = None`, PEP 484's implicit Optional;
    `size: int = (28, 28)`)."""
    default = declared.default
    if declared.has_default and type(value) is type(default) and value == default:
        return True
    return fits(value, declared.annotation)


_NONE = object()  # no example found


def _example(value: Any, annotation: Any, default: Any) -> Any:
    """A value that fits: the one given as the type wants it ('8' -> 8, 16.5 -> 16), else the
    default, else one made from the annotation (None last: it says least)."""
    given = (*_converted(value), *_nearest(annotation, value), default, *_made(annotation))
    found = [v for v in given if v is not None]
    for candidate in [*found, None]:
        if fits(candidate, annotation):
            return candidate
    return _NONE


def _converted(value: Any) -> Iterable[Any]:
    """What the user may have meant by `value` in another type."""
    if isinstance(value, str):
        try:
            yield ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        if value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            yield value.strip().lower() in ("true", "yes", "on")
    elif isinstance(value, float) and value == value and abs(value) != float("inf"):
        yield round(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield from ([bool(value)] if value in (0, 1) else [])
        yield float(value)
    elif isinstance(value, (tuple, list)):
        yield from (tuple(value), list(value))
    if not isinstance(value, str | None):  # None meant no value, not the text 'None'
        yield str(value)


def _nearest(annotation: Any, value: Any) -> Iterable[Any]:
    """The choice of a Literal (in a union too) spelled nearest to `value` ('gleu' -> 'gelu')."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        near = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        yield from (a for a in args if near and str(a) == near[0])
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for a in args:
            yield from _nearest(a, value)


def _made(annotation: Any) -> Iterable[Any]:
    """Values of the annotation's type: a stock one of each simple type, a Literal's choices,
    a tuple or list of them."""
    stock = {int: 10, float: 0.5, bool: True, str: "text"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in stock:
        yield stock[annotation]
    elif origin is typing.Literal:
        yield from args
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for a in args:
            yield from _made(a)
    elif origin in (tuple, list) and args:
        yield origin(next(iter(_made(a)), None) for a in args if a is not Ellipsis)


def _a(value: Any) -> str:
    """'a float', 'an int', 'None': what the value is, for the message."""
    kind = type(value).__name__
    return "None" if value is None else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _shell(item: str) -> str:
    """A --model-arg as a shell keeps it: in double quotes where it has quotes, spaces or
    brackets."""
    return item if re.fullmatch(r"[\w.+=-]+", item) else '"' + item.replace('"', '\\"') + '"'


# a value of the default's kind: _EXACT's simple types; a tuple or a list for either
_LIKE_DEFAULT = {
    **{kind: check for kind, check in _EXACT.items() if kind is not type(None)},
    tuple: lambda v: isinstance(v, (tuple, list)),
    list: lambda v: isinstance(v, (tuple, list)),
}


def unlike_defaults(factory_name: str, args: Iterable[tuple[str, Any]], declared: Declared) -> str:
    """For a factory that raised: each argument of another type than the parameter's default,
    where the parameter has no annotation to refuse it by (`width=16` written, 16.5 or True
    given: torch's 'empty(): argument 'size' ... must be tuple of ints' named neither). ''
    when every argument is of its default's type (an int where a float is, 2 for 2.0, too)."""
    told = []
    for name, value in args:
        d = declared(name)
        if d is None or not d.has_default or d.annotation is not inspect.Parameter.empty:
            continue
        default = d.default
        fits_default = _LIKE_DEFAULT.get(type(default))
        if fits_default is None or fits_default(value):
            continue
        told.append(
            f"{name}={quote(value)} is {_a(value)} where {factory_name}'s default "
            f"{quote(default)} is {_a(default)}: give {_a(default)}"
        )
    return f" ({'; '.join(told)})" if told else ""
