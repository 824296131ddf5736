"""How an error message quotes a value the user gave: short, whatever the value is.

A message is one line. A YAML "billion laughs" value (aliases nesting lists ten deep) or a
10,000-digit integer must not turn it into 143 KB of text, nor crash the message itself
(Python refuses str() of an int over 4,300 digits).
"""

from __future__ import annotations

import reprlib

WIDTH = 60  # characters of a quoted value, at most


class _Repr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        # A few items of a few levels: enough to recognise the value in one line.
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 2, 4, 4, 4
        self.maxstring = self.maxother = self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # repr() itself fails beyond 4,300 digits
            return f"<{x.bit_length()}-bit integer>"
        return super().repr_int(x, level)


_REPR = _Repr()


def quote(value: object, width: int = WIDTH) -> str:
    """repr(value), at most `width` characters (the cut ends in "...").

    >>> quote([[1, 2, 3, 4, 5]] * 3)
    '[[1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...]]'
    """
    text = _REPR.repr(value)  # reprlib names an object whose __repr__ raises by its type
    return text if len(text) <= width else text[: width - 3] + "..."
