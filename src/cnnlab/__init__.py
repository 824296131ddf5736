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

from cnnlab.design.build import build
from cnnlab.design.spec import Spec, load_spec, preset_names
from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError, DataError, RunError, SpecError

__version__ = "0.1.0"

# Submodules loaded on first use, by public name -> module path.
_MODULES = {
    "geometry": "cnnlab.geometry",
    "layers": "cnnlab.design.layers",
    "reference": "cnnlab.design.reference",
    "spec": "cnnlab.design.spec",
    "explain": "cnnlab.explain",
    "diagnose": "cnnlab.diagnose",
    "inspect": "cnnlab.inspect",
    "data": "cnnlab.data",
    "train": "cnnlab.train",
    "design": "cnnlab.design",
}

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
        return import_module(_MODULES[name])
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
