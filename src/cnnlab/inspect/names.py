"""The layer a name that matches none was meant to be, for the error that lists every name."""

from __future__ import annotations

import difflib
from typing import Any


def meant(name: Any, names: list[str]) -> str:
    """'; did you mean X?' to put before the list of every name (a DenseNet-121's is 400 of
    them): the one name that ends with `name` (a wrapper's attribute left out: `resnet.encoder`
    for `m.resnet.encoder`, a Hugging Face model held as `self.m`), else the closest spelling
    (difflib's ratio at least 0.8); '' for neither."""
    if not isinstance(name, str) or not name:
        return ""
    ending = [n for n in names if n.endswith("." + name)]
    near = ending if len(ending) == 1 else difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    return f"; did you mean {near[0]!r}?" if near else ""
