"""The presets shipped with cnnlab (design/presets/*.yaml): their names and files.

Apart from `spec` (which imports torch through the layer kinds) so that `cnnlab train --help`
can list the presets without torch's seconds of import; `spec` re-exports both functions.
"""

from __future__ import annotations

from importlib import resources

PRESETS = resources.files("cnnlab.design") / "presets"


def preset_path(name: str):
    """Where preset `name`'s YAML is (in the installed package, not a source checkout's
    src/): the file to copy and edit for a preset of other outputs or input."""
    return PRESETS / f"{name}.yaml"


def preset_names() -> list[str]:
    """Names of the presets shipped in cnnlab/design/presets/*.yaml, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in PRESETS.iterdir() if p.name.endswith(".yaml"))
