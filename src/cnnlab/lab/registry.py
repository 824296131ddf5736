"""The one place experiments are registered: module names under cnnlab.lab, in page order.

Each module holds `EXPERIMENT = Experiment(...)` (see experiment.py). Add a new one here.
"""

from __future__ import annotations

import difflib
import importlib

from cnnlab.errors import ConfigError
from cnnlab.lab.experiment import Experiment

MODULES = (  # in the order of the notes' claims (issue 11's list)
    "ex_parameters",
    "ex_spatial",
    "ex_translation",
    "ex_sharing",
    "ex_floor",
    "ex_stacking",
    "ex_pooling",
    "ex_nonlinearity",
    "ex_vanishing",
    "ex_dying",
    "ex_heads",
    "ex_hierarchy",
    "ex_softmax",
    "ex_explanations",
)


def experiments(only: list[str] | tuple[str, ...] | None = None) -> list[Experiment]:
    """The registered experiments in page order, or only those named in `only` (ConfigError
    naming the known ones for an unknown name)."""
    found = [importlib.import_module(f"cnnlab.lab.{m}").EXPERIMENT for m in MODULES]
    if not only:
        return found
    known = {e.name: e for e in found}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(
            f"no experiment named {', '.join(map(repr, unknown))}{_meant(unknown, known)}; "
            f"the lab has {', '.join(known)}"
        )
    return [e for e in found if e.name in only]


def _meant(unknown: list[str], known: dict[str, Experiment]) -> str:
    """'; did you mean X?' for the first unknown name close to a known one (a typo), else ''."""
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1)
        if close:
            return f"; did you mean {close[0]}?"
    return ""
