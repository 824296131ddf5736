"""The value rules of the spec language's layer arguments: value -> canonical value.

Each checker returns the canonical form of a valid value (``[3, 3]`` -> ``3``, ``valid`` ->
``0``) or raises :class:`Invalid` with what is wrong; the spec parser adds which layer and
argument. The kinds (:mod:`cnnlab.design.kinds`) name a checker for every argument.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from typing import Any

from cnnlab.design.quote import quote

LARGEST = 2**31 - 1  # the largest size, stride, count... a spec may give


class Invalid(Exception):
    """An argument's value is wrong; the caller adds which layer and argument."""


_INTEGER_TEXT = r"\s*[-+]?\d+\s*"
_NUMBER_TEXT = r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"
_LEADING_ZERO = r"\s*[-+]?0\d+\s*"  # YAML reads 08 and 09 as text, 010 as octal


def _quoted_number(value: Any, pattern: str = _NUMBER_TEXT) -> str:
    """'' unless `value` is text that reads as a number ("32", '0.2'): then how to write it."""
    if not isinstance(value, str) or len(value) > 40 or not re.fullmatch(pattern, value):
        return ""
    if re.fullmatch(_LEADING_ZERO, value):
        return f" the text {quote(value)}: write {int(value)}, without the leading zero"
    return f" the text {quote(value)}, in quotes; write {value.strip()} without them"


def integer(value: Any, minimum: int) -> int:
    """An int >= minimum and <= LARGEST (bools, floats and text refused)."""
    if isinstance(value, bool):
        raise Invalid(f"must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        text = _quoted_number(value, _INTEGER_TEXT)
        if text:
            raise Invalid(f"must be an integer >= {minimum}, got{text}") from None
        raise Invalid(f"must be an integer >= {minimum}, got {quote(value)}") from None
    if value < minimum:
        raise Invalid(f"must be an integer >= {minimum}, got {quote(value)}")
    if value > LARGEST:  # torch sizes are int64; and huge ints cannot even be printed
        raise Invalid(f"must be at most {LARGEST:,}, got a {value.bit_length()}-bit integer")
    return value


def pair(value: Any, minimum: int) -> int | tuple[int, int]:
    """An int, or an [h, w] pair (kept as a tuple unless both are equal)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise Invalid(f"must be an integer or an [h, w] pair, got {quote(value)}")
        h, w = integer(value[0], minimum), integer(value[1], minimum)
        return h if h == w else (h, w)
    return integer(value, minimum)


def positive(value: Any) -> int:
    """An integer >= 1 (filters, features, groups)."""
    return integer(value, 1)


def size(value: Any) -> int | tuple[int, int]:
    """A kernel, stride, dilation or output size: an integer >= 1 or an [h, w] pair."""
    return pair(value, 1)


def nonneg_size(value: Any) -> int | tuple[int, int]:
    """A padding: an integer >= 0 or an [h, w] pair."""
    return pair(value, 0)


def conv_padding(value: Any) -> int | tuple[int, int] | str:
    """A conv's padding: an integer, [h, w], ``same`` (kept; resolved per axis) or ``valid``."""
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise Invalid(f"must be an integer, an [h, w] pair, same or valid, got {quote(value)}")
        return 0 if value == "valid" else "same"
    return pair(value, 0)


def pool_stride(value: Any) -> int | tuple[int, int] | None:
    """A pool's stride; None until the parser sets it to the kernel."""
    return None if value is None else pair(value, 1)


# the words YAML 1.1 reads as booleans, which a spec reads as text (cnnlab.design.spectext)
_YAML11_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def flag(value: Any) -> bool:
    """true or false (not 1, not "yes": yes/no/on/off are told the word to write)."""
    if isinstance(value, str) and value.strip().lower() in _YAML11_WORDS:
        word = _YAML11_WORDS[value.strip().lower()]
        raise Invalid(f"must be true or false, got {quote(value)}: write {word}")
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {quote(value)}")
    return value


def number(value: Any) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Invalid(f"must be a number, got{_quoted_number(value) or ' ' + quote(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if not math.isfinite(value):
        raise Invalid(f"must be a finite number, got {value}")
    return value


def probability(value: Any) -> float:
    """A number in [0, 1) (a dropout rate: 1 would drop everything)."""
    p = number(value)
    if not 0 <= p < 1:
        raise Invalid(f"must be in [0, 1), got {p}")
    return p


def approximation(value: Any) -> str:
    """GELU's approximation: none or tanh."""
    if not isinstance(value, str) or value not in ("none", "tanh"):
        raise Invalid(f"must be none or tanh, got {quote(value)}")
    return value
