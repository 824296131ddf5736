"""Numbers made JSON-ready for `to_dict()`: inf and nan become None (the flags say why)."""

from __future__ import annotations

import math
from typing import Any


def finite(value: float) -> float | None:
    """float(value) where finite, else None."""
    return float(value) if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """`finite(value)` for a float; any other value as it is."""
    return finite(value) if isinstance(value, float) else value
