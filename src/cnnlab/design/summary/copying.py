"""A copy of the user's model to trace: its own module objects (so the tracer can wrap their
forwards and set eval mode), its hooks left behind, so nothing a trace does reaches the
original (device, mode, hooks, requires_grad stay as they were).

Two kinds of copy:

- shared tensors (`make=None`, the meta trace): the copy's parameter and buffer dicts hold
  the original tensors, listed in `originals`; the tracer swaps each for a meta twin the
  first time a torch call receives it (`Tracer.meta_args`), so no torch call ever reads or
  writes the original. Most are never swapped: a conv or BatchNorm module's output is made
  from its attributes (`leaves.py`, `Shortcuts._same_shape`). Against making every tensor's
  meta twin up front (GhostNet has 590): 1.06× -> 1.26× on the geometric mean of 9
  families, same-run alternated calls.
- made tensors (`make=meta` or `clone`): each tensor is make(tensor), made once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError

META = torch.device("meta")

Named = list[tuple[str, nn.Module]]  # (dotted name, module), as model.named_modules()


def named_modules(model: nn.Module) -> Named:
    """model.named_modules() (each module once, under its first name, depth first) without
    its generators (a third of the cost)."""
    found: Named = []
    _walk(model, "", found, set())
    return found


def _walk(module: nn.Module, prefix: str, found: Named, seen: set[int]) -> None:
    """(A module-level function: a nested recursive one is a reference cycle.)"""
    seen.add(id(module))
    found.append((prefix, module))
    for name, child in module._modules.items():
        if child is not None and id(child) not in seen:
            _walk(child, f"{prefix}.{name}" if prefix else name, found, seen)


def shares(originals: dict[int, Tensor], items: Any) -> bool:
    """Whether a list or tuple holds one of `originals` (in C: a generator over a conv's
    stride costs 1 µs)."""
    return not originals.keys().isdisjoint(map(id, items))


Prepare = Callable[[str, nn.Module, dict[str, Any]], None]  # (name, copy, its attributes)


def copy_module(
    model: nn.Module,
    make: Callable[[Tensor], Tensor] | None,
    prepare: Prepare,
    originals: dict[int, Tensor],
    hooked: list[str] | None = None,
    packed: list[str] | None = None,
    named: Named | None = None,
) -> nn.Module:
    """A copy of `model` whose modules have no hooks; `originals` gets the tensors it shares
    with the original by id (`make=None`; else none: each tensor is make(tensor), a tensor
    shared by two modules made once). prepare(name, copy, attributes) is called for each
    module's copy in the copy's own pass (`Tracer.prepare`), with its attribute dict.
    `hooked` is set to the names of the modules with forward (pre-)hooks of the user's,
    which the copy goes without; `packed` to those of torch.ao's quantized layers, whose
    weights are packed, no parameters. `named`: named_modules(model), where the caller has it.

    A deepcopy specialised for modules (`_copy_modules`): hook dicts come back empty,
    immutable attributes are shared and every other attribute is deep-copied, so nothing
    the trace does can reach the original. A model with a module that defines __deepcopy__
    (parametrizations) goes through copy.deepcopy, with meta tensors if `make` is None.
    """
    named = named_modules(model) if named is None else named
    if hooked is not None:
        hooked[:] = [n for n, m in named if m._forward_pre_hooks or m._forward_hooks]
    memo: dict[int, Any] = {}  # id of an original (module, tensor, attribute) -> its copy
    kinds = {type(m) for _, m in named}
    if packed is not None:
        quantized = {kind for kind in kinds if _packs_weights(kind)}
        packed[:] = [n for n, m in named if type(m) in quantized] if quantized else []
    if any(issubclass(kind, torch.jit.ScriptModule) for kind in kinds):  # scripted or traced
        name, m = next((n, m) for n, m in named if isinstance(m, torch.jit.ScriptModule))
        raise CnnlabError(_uncopied(name, m))
    if any(hasattr(kind, "__deepcopy__") for kind in kinds):
        _deepcopy_modules(model, [m for _, m in named], _twins(make or meta, memo), memo)
        for name, m in named:
            if id(m) not in memo:
                raise CnnlabError(_uncopied(name, m))
            prepare(name, memo[id(m)], vars(memo[id(m)]))
    else:
        twin = _twins(make, memo) if make is not None else None
        _copy_modules(named, twin, memo, prepare, originals)
    return memo[id(model)]


def _packs_weights(kind: type) -> bool:
    """torch.ao's quantized conv and linear layers (static and dynamic): their weight is a
    method reading packed parameters, which parameters() does not list."""
    return kind.__module__.startswith("torch.ao.nn.quantized") and callable(
        getattr(kind, "weight", None)
    )


def compiled_inner(module: nn.Module, state: dict[str, Any]) -> nn.Module | None:
    """The module a torch.compile'd one wraps (its OptimizedModule holds it as `_orig_mod`,
    with the same parameters), None for any other module. Checked by name: importing
    torch._dynamo to test the type costs a second."""
    if type(module).__name__ != "OptimizedModule":  # first: a ScriptModule's _modules is
        return None  # no dict (it has no .get)
    inner = state.get("_modules", {}).get("_orig_mod")
    return inner if isinstance(inner, nn.Module) else None


def unwrapped(model: nn.Module) -> tuple[nn.Module, str]:
    """(the module DDP, nn.DataParallel and torch.compile wrappers hold, in any nesting; the
    prefix they put before its layers' names, e.g. "module._orig_mod."): the one rule by which
    summary, explain and diagnose name a wrapped model's layers as the model inside does.
    Only the wrappers at the root are looked through: one inside the model (an
    nn.Sequential holding an nn.DataParallel) is a layer of the user's model, its layers
    named as named_modules() names them (`0.module.2`)."""
    parallel = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    prefix = ""
    while True:
        if isinstance(model, parallel) and isinstance(getattr(model, "module", None), nn.Module):
            model, prefix = model.module, prefix + "module."
        elif (inner := compiled_inner(model, vars(model))) is not None:
            model, prefix = inner, prefix + "_orig_mod."
        else:
            return model, prefix


def plain_name(name: str) -> str:
    """A layer's name without torch.compile's `_orig_mod` segments (`features._orig_mod.0`
    -> `features.0`), as the model's eager copy (`inspect.decompiled`) names it: the one rule
    for summary's rows and for the commands that open a run."""
    return ".".join(part for part in name.split(".") if part != "_orig_mod")


def _uncopied(name: str, module: nn.Module) -> str:
    """Why `module` (at `name`) cannot be traced, and what to pass instead."""
    where = f"module {name or '(the model)'!r} ({type(module).__name__})"
    if isinstance(module, torch.jit.ScriptModule):
        return (
            f"summary cannot trace {where}: TorchScript runs its calls where no Python sees "
            "them; summarize the model before torch.jit.script or torch.jit.trace"
        )
    return (
        f"summary cannot trace {where}: its __deepcopy__ returns the module itself, and the "
        "trace works on a copy so as never to touch your model; give it a __deepcopy__ that "
        "copies"
    )


def _twins(make: Callable[[Tensor], Tensor], memo: dict[int, Any]) -> Callable:
    def twin(t: Tensor, parameter: bool = False) -> Tensor:
        new = memo.get(id(t))
        if new is None:
            new = memo[id(t)] = nn.Parameter(make(t), t.requires_grad) if parameter else make(t)
        return new

    return twin


def _sharing(originals: dict[int, Tensor]) -> Callable:
    def share(t: Tensor, parameter: bool = False) -> Tensor:
        originals[id(t)] = t
        return t

    return share


def _copy_modules(
    named: Named,
    twin: Callable | None,
    memo: dict[int, Any],
    prepare: Prepare,
    originals: dict[int, Tensor],
) -> None:
    """Copies every module into memo, in one pass over each module's own attributes; with
    `twin` None the copies share the tensors, listed in `originals`. The copies share one
    set of empty hook dicts (nothing registers hooks on a copy; a fresh set per module is
    eleven dicts a module, 4,000 for GhostNet)."""
    hooks = {key: kind() for key, kind in _HOOK_DICTS.items()}
    for _, module in named:  # shells first, for attributes that point at other modules
        memo[id(module)] = object.__new__(type(module))
    if twin is None:
        _copy_shared(named, memo, prepare, originals, hooks)
        return
    own_types: dict[type, bool] = {}
    for name, module in named:
        state = vars(module).copy()
        state.update(hooks)
        state["_parameters"] = {
            k: None if v is None else twin(v, parameter=True) for k, v in module._parameters.items()
        }
        state["_buffers"] = {k: None if v is None else twin(v) for k, v in module._buffers.items()}
        state["_modules"] = {
            k: None if v is None else memo[id(v)] for k, v in module._modules.items()
        }
        state["_non_persistent_buffers_set"] = set(module._non_persistent_buffers_set)
        kind = type(module)
        torchs = own_types.get(kind)
        if torchs is None:
            torchs = own_types[kind] = kind.__module__.startswith(_TORCH_MODULES)
        if not torchs:  # torch's own layers never write their attributes: shared as they are
            _copy_attributes(state, twin, memo)  # (most modules are torch's)
        shell = memo[id(module)]
        object.__setattr__(shell, "__dict__", state)  # the dict itself, not a copy
        prepare(name, shell, state)


def _copy_shared(
    named: Named, memo: dict[int, Any], prepare: Prepare, originals: dict, hooks: dict
) -> None:
    """`_copy_modules` of the meta trace (the copies share the tensors): a leaf's empty
    dicts made as {} and set() (no dict comprehension, no call per tensor dict). With
    `Tracer.prepare` skipping an empty parameter dict: copy and prepare 1.08-1.11x (median
    per-pair ratio, 100 alternated calls, four families), about 2 % of a summary."""
    own_types: dict[type, bool] = {}
    share = _sharing(originals)
    for name, module in named:
        src = vars(module)
        state = src.copy()
        state.update(hooks)
        state["_parameters"] = _shared(src["_parameters"], originals)
        state["_buffers"] = _shared(src["_buffers"], originals)
        children = src["_modules"]
        state["_modules"] = (
            {k: None if v is None else memo[id(v)] for k, v in children.items()} if children else {}
        )
        persistent = src["_non_persistent_buffers_set"]
        state["_non_persistent_buffers_set"] = set(persistent) if persistent else set()
        kind = type(module)
        torchs = own_types.get(kind)
        if torchs is None:
            torchs = own_types[kind] = kind.__module__.startswith(_TORCH_MODULES)
        if not torchs:  # torch's own layers never write their attributes: shared as they are
            _copy_attributes(state, share, memo)  # (most modules are torch's)
        shell = memo[id(module)]
        object.__setattr__(shell, "__dict__", state)  # the dict itself, not a copy
        prepare(name, shell, state)


def _shared(tensors: dict[str, Tensor | None], originals: dict[int, Tensor]) -> dict:
    """A copy of a module's parameter or buffer dict holding the same tensors, each listed
    in `originals` (a loop, not a call per tensor: half the time; an empty dict as {})."""
    if not tensors:
        return {}
    copied = tensors.copy()
    for t in copied.values():
        if t is not None:
            originals[id(t)] = t
    return copied


def _copy_attributes(state: dict[str, Any], twin: Callable, memo: dict[int, Any]) -> None:
    """A module's own attributes (kernel_size, a config...) in `state`: immutable ones shared,
    tensors twinned, lists, sets and dicts of immutable items copied one level deep (all a
    deepcopy would do), others deep-copied."""
    for key in state.keys() - _MODULE_KEYS:
        value = state[key]
        kind = type(value)
        if kind in _ATOMIC or (kind is tuple and _atomic_items(value)):
            continue  # a flag, a name, kernel_size=(3, 3): immutable, shared
        if isinstance(value, Tensor):
            state[key] = twin(value)
        elif kind in (set, list) and _atomic_items(value):
            state[key] = kind(value)
        elif kind is dict and _atomic_items(value) and _atomic_items(value.values()):
            state[key] = value.copy()  # Hugging Face's plans: a deepcopy 5-30 µs each
        else:
            state[key] = memo[id(value)] if id(value) in memo else _deepcopy(value, memo, twin)


def _deepcopy_modules(
    model: nn.Module, modules: list[nn.Module], twin: Callable, memo: dict[int, Any]
) -> None:
    """copy.deepcopy(model) with the tensors' twins and empty hook dicts put in its memo
    (where it also leaves every module's copy)."""
    for module in modules:
        for p in module._parameters.values():
            if p is not None:
                twin(p, parameter=True)
        for value in (*vars(module).values(), *module._buffers.values()):
            if isinstance(value, Tensor):
                twin(value)
        for key in _HOOK_DICTS.keys() & vars(module).keys():
            memo[id(vars(module)[key])] = type(vars(module)[key])()
    _deepcopy(model, memo, twin)


def _deepcopy(value: Any, memo: dict[int, Any], twin: Callable) -> Any:
    """copy.deepcopy(value, memo), where a tensor autograd computed (not a leaf: it has a
    grad_fn), which torch refuses to deepcopy, is twinned as the model's own tensors are
    (shared, made meta or cloned detached). Such tensors are caches of values computed from
    the weights: Hugging Face's LeViT keeps its attention biases of an eval-mode forward
    run with gradients on in a dict. Looked for only when deepcopy refuses one (a walk of
    every attribute on each call would cost every model)."""
    before = len(memo)
    try:
        return copy.deepcopy(value, memo)
    except RuntimeError:
        found = _non_leaves(value, [], set())
        if not found:
            raise
    for key in list(memo)[before:]:  # the failed call's half-made copies
        del memo[key]
    for t in found:
        memo[id(t)] = twin(t)
    return copy.deepcopy(value, memo)


def _non_leaves(value: Any, found: list[Tensor], seen: set[int]) -> list[Tensor]:
    """The tensors with a grad_fn in `value`, its containers and objects' attributes."""
    if id(value) in seen or type(value) in _ATOMIC:
        return found
    seen.add(id(value))
    if isinstance(value, Tensor):
        if value.grad_fn is not None:
            found.append(value)
        return found
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        items = list(getattr(value, "__dict__", {}).values())
    for item in items:
        _non_leaves(item, found, seen)
    return found


# where nn.Conv2d, nn.BatchNorm2d, nn.Sequential... live, and torch.compile's wrapper (the
# tracer calls the module it wraps instead of its forward: its compiler state is not copied)
_TORCH_MODULES = ("torch.nn.modules.", "torch._dynamo.eval_frame")
_ATOMIC = frozenset({int, float, complex, bool, str, bytes, type(None), torch.dtype, torch.device})
_HOOK_DICTS = {
    k: type(v) for k, v in vars(nn.Module()).items() if isinstance(v, dict) and "hook" in k
}
# nn.Module's own attributes, set above (hooks, tensors, children) or immutable (training)
_MODULE_KEYS = frozenset(vars(nn.Module())) | {"_parameters", "_buffers", "_modules"}


def _atomic_items(values: Collection[Any]) -> bool:
    """Every item is of an atomic type, checked in C: set(map(type)) for a few items (0.3 µs
    for a pair); a long list's types compared with its first by identity (list.count), where
    a set's insert per item cost twice as much (Hugging Face's LeViT keeps 175,000 ints in
    lists: 20 ns an item, now 11)."""
    if len(values) < 64:
        return set(map(type, values)) <= _ATOMIC
    types = list(map(type, values))
    first = types[0]
    if types.count(first) == len(types):
        return first in _ATOMIC
    return set(types) <= _ATOMIC


def meta(t: Tensor) -> Tensor:
    """A tensor of t's shape and dtype with no data. From a CPU tensor empty_like is the
    fastest (1.0 µs, torch.empty 2.2 µs; a ResNet-50 copy makes 373); from a meta tensor
    it runs a Python kernel (23 µs), so torch.empty."""
    if t.is_meta:
        return torch.empty(t.shape, dtype=t.dtype, device=META)
    return torch.empty_like(t, device=META)


def clone(t: Tensor) -> Tensor:
    return t.detach().clone()
