"""The layer a name that matches none was meant to be, for the error that lists every name;
what a name of another kind (diagnose's activation site) is, for the error that says so; a
call's label (`relu #2`) as its module's name and call number; the article of a word."""

from __future__ import annotations

import difflib
import re
from collections.abc import Container
from typing import Any

from torch import nn


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


# an activation a forward computes with a function, as diagnose names it: `block.relu()`,
# `sigmoid()` at the top level, ` #2` for its second call
_SITE = re.compile(r"^(?:(?P<owner>.+)\.)?(?P<kind>\w+)\(\)(?: #\d+)?$")


def function_site(name: Any, modules: dict[str, nn.Module]) -> str:
    """The refusal of diagnose's name of an activation computed by a function (F.relu in
    `se`'s forward: `se.relu()`), which no module outputs; '' for another name."""
    found = _SITE.match(name) if isinstance(name, str) else None
    owner = found and (found["owner"] or "")
    if not found or owner not in modules:
        return ""
    where = f"the forward of {owner!r}" if owner else "the model's own forward"
    children = [f"{owner}.{c}" if owner else c for c, _ in modules[owner].named_children()]
    layers = ", ".join(children[:8]) or "(it has none)"
    give = f"{owner!r} (its output) or one of its layers" if owner else "a layer"
    return (
        f"unknown layer {name!r}: it names the {found['kind']} that {where} computes with a "
        f"function (diagnose's activation sites), which no module outputs; give {give}: {layers}"
    )


# a call's label, as the summary, the explorer and diagnose name calls (`call_label`)
_CALL = re.compile(r"^(?P<name>.*) #(?P<call>[1-9]\d*)$")


def split_call(name: Any, modules: Container[str]) -> tuple[Any, int]:
    """(module name, call number) of a call's label among the names `modules`: `relu #2` ->
    ('relu', 2); a module's own name -> (name, 1), its first call, as the summary and the
    explorer label it; any other name as given, call 1 (for `resolve_layer` to refuse)."""
    if not isinstance(name, str) or name in modules:
        return name, 1
    found = _CALL.match(name)
    if found is None or found["name"] not in modules:
        return name, 1
    return found["name"], int(found["call"])


def an(word: str) -> str:
    """The article of `word`: 'an' before a vowel ('an ImageClassifierOutput')."""
    return "an" if word[:1] in "aeiouAEIOU" else "a"


def not_a_name(given: Any, modules: dict[str, nn.Module]) -> str:
    """Why a layer option refuses what is not a str (`modules`: `named_modules()`), with the
    name to give: a module (as Captum takes layers) by its name in the model, found by
    identity; a Sequential's index (`4`) as the str '4'; a list or tuple of names, since the
    option takes one layer; '' for a str, which `resolve_layer` checks as a name."""
    if isinstance(given, str):
        return ""
    if isinstance(given, nn.Module):
        return _module_given(given, modules)
    if str(given) in modules and not isinstance(given, (list, tuple, set, frozenset, dict)):
        return (
            f"layer {given!r} is given as {type(given).__name__}; layers are named by their "
            f"dotted module name, a str: give {str(given)!r}"
        )
    kind = type(given).__name__
    said = f"layer takes one layer name, a str (`relu #2` for a call), not {an(kind)} {kind}"
    items = list(given) if isinstance(given, (list, tuple, set, frozenset)) else []
    names = [_name_of(item, modules) for item in items]
    if len(items) == 1 and names[0]:
        return f"{said} {given!r}: give {names[0]!r}"
    if items and all(names):
        return f"{said} {given!r}: give one of {', '.join(map(repr, names))}, one call each"
    return f"{said} {given!r}: give one of explain.layer_names(model)"


def _name_of(item: Any, modules: dict[str, nn.Module]) -> str:
    """The layer name an item of a list given as a layer stands for; '' for none."""
    if isinstance(item, nn.Module):
        return next((n for n, m in modules.items() if m is item and n), "")
    name = item if isinstance(item, str) else str(item)
    return name if split_call(name, modules)[0] in modules and name else ""


def _module_given(module: nn.Module, modules: dict[str, nn.Module]) -> str:
    """Why a module given where a layer's name goes is refused, and the name to give."""
    name, kind = _name_of(module, modules), type(module).__name__
    if name:
        return f"layers are named, not given as modules: give {name!r} for that {kind}"
    return f"layer {kind} is not a module of the model; name one of explain.layer_names(model)"
