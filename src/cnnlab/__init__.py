"""cnnlab: design, train, diagnose and explain convolutional image classifiers.

Public API (names are stable; see DESIGN.md)::

    cnnlab.load_spec(path_or_dict_or_preset) -> Spec
    cnnlab.build(spec) -> nn.Module
    cnnlab.summary(model_or_spec, input_size=(C, H, W)) -> Summary
    cnnlab.geometry, cnnlab.layers, cnnlab.reference, cnnlab.explain, cnnlab.diagnose

Everything that needs torch loads on first use (PEP 562 `__getattr__`), so `import cnnlab`
(and with it the `cnnlab` command's dispatcher) starts without torch: the command installs its
Ctrl-C and SIGTERM handling before the seconds of torch's import, and a signal there is one
line, not a traceback. No submodule is named `summary` or `build` directly under `cnnlab`, so
the names stay the functions.
"""

from importlib import import_module

from cnnlab.errors import CnnlabError, DataError, RunError, SpecError

__version__ = "0.1.0"

# Functions and classes loaded on first use, by public name -> module path.
_OBJECTS = {
    "build": "cnnlab.design.build",
    "Spec": "cnnlab.design.spec",
    "load_spec": "cnnlab.design.spec",
    "preset_names": "cnnlab.design.presetfiles",  # torch-free
    "summary": "cnnlab.design.summary",
}

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
    if name in _OBJECTS:
        return getattr(import_module(_OBJECTS[name]), name)
    if name in _MODULES:
        return import_module(_MODULES[name])
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so tab completion and introspection still list them."""
    return sorted({*globals(), *__all__})
