"""cnnlab: design, train, diagnose and explain convolutional image classifiers.

Public API (names are stable; see DESIGN.md)::

    cnnlab.load_spec(path_or_dict_or_preset) -> Spec
    cnnlab.build(spec) -> nn.Module
    cnnlab.summary(model_or_spec, input_size=(C, H, W)) -> Summary
    cnnlab.geometry, cnnlab.layers, cnnlab.reference, cnnlab.explain, cnnlab.diagnose

The three functions are imported eagerly: `summary` and `build` share their names with their
modules, and an eager `from ... import` is what keeps `cnnlab.summary` the function.
Other submodules load on first use.
"""

from importlib import import_module

from cnnlab.build import build
from cnnlab.errors import CnnlabError, DataError, RunError, SpecError
from cnnlab.spec import Spec, load_spec, preset_names
from cnnlab.summary import summary

__version__ = "0.1.0"

_MODULES = {"geometry", "layers", "reference", "explain", "diagnose", "data", "train", "spec"}

__all__ = [
    "CnnlabError",
    "DataError",
    "RunError",
    "Spec",
    "SpecError",
    "build",
    "load_spec",
    "preset_names",
    "summary",
    *sorted(_MODULES),
]


def __getattr__(name: str):
    if name in _MODULES:
        return import_module(f"cnnlab.{name}")
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
