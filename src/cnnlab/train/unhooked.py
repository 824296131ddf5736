"""Training's own check forwards, unseen by the user's forward hooks: `unhooked(model)`.

Before the first step train runs the user's model in training mode on two zero images to
read its autograd graph (`fit._check_graph`, `fit.graph_walk`: the no-gradient note and
DDP's options). A forward hook of the user's (a counter, a logger, an activation store)
saw those forwards as if they were training's, and one that raises stopped train before a
step. Inside `unhooked` the model's forward and forward-pre hooks, and torch's global ones,
are set aside; torch's own (spectral_norm's, weight_norm's and pruning's pre-hooks, which
compute the weight the forward uses) stay. Backward hooks stay: no backward runs here.
Where the hook-free forward may not be training's (a forward reading what its own hook
stored), fit runs it again with the hooks (`user_hooks` says whether there are any).
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.nn.utils import prune
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

# The forward-side hook tables of a module, and the globals of the same kinds.
_TABLES = ("_forward_pre_hooks", "_forward_hooks")
_GLOBALS = ("_global_forward_pre_hooks", "_global_forward_hooks")
# The forward-pre hooks torch.nn.utils registers: each computes the weight the forward uses.
_WEIGHT_HOOKS = (SpectralNorm, WeightNorm, prune.BasePruningMethod)


@contextmanager
def unhooked(model: nn.Module) -> Iterator[nn.Module]:
    """`model` with every forward and forward-pre hook not torch's own (`torch_own`) set
    aside, on its modules and torch's global tables; each table as it was afterwards, the
    forward raised or not. A hook registered inside the block is dropped (`preserved`
    drops it too). TorchScript modules keep theirs: their tables are C++'s."""
    held = list(_users_tables(model))
    for m, table, hooks in held:
        kept = OrderedDict((k, h) for k, h in hooks.items() if torch_own(h))
        object.__setattr__(m, table, kept)
    saved = [(name, OrderedDict(getattr(torch_module, name))) for name in _GLOBALS]
    try:
        for name, hooks in saved:
            table = getattr(torch_module, name)  # emptied in place: torch reads the global
            table.clear()
            table.update((k, h) for k, h in hooks.items() if torch_own(h))
        yield model
    finally:
        for m, table, hooks in held:
            object.__setattr__(m, table, hooks)
        for name, hooks in saved:
            table = getattr(torch_module, name)
            table.clear()
            table.update(hooks)


def user_hooks(model: nn.Module) -> bool:
    """Whether a forward or forward-pre hook of the user's (not `torch_own`) sees `model`'s
    forward: on one of its modules or in torch's global tables. Without one, `unhooked`
    changes nothing."""
    if any(True for _ in _users_tables(model)):
        return True
    tables = (getattr(torch_module, name).values() for name in _GLOBALS)
    return any(not torch_own(h) for hooks in tables for h in hooks)


def _users_tables(model: nn.Module):
    """(module, table name, table) of each hook table of `model`'s holding a user's hook."""
    for m in model.modules():
        if isinstance(m, torch.jit.ScriptModule):
            continue
        for table in _TABLES:
            hooks = getattr(m, table)
            if any(not torch_own(h) for h in hooks.values()):
                yield m, table, hooks


def torch_own(hook) -> bool:
    """Whether `hook` is torch's code: a function of a torch module (a bound method, a
    functools.partial's function too: lazy layers', quantization's, tensor parallelism's),
    or one of the objects torch.nn.utils registers to make a weight before the forward:
    spectral_norm's, weight_norm's, a pruning method (a user's too: prune's documented way
    to prune otherwise). Any other object is the user's, even of a torch class's subclass
    (an nn.Module with __call__ recording outputs)."""
    while isinstance(hook, functools.partial):
        hook = hook.func
    if inspect.isfunction(hook) or inspect.ismethod(hook):
        return _in_torch(hook)
    return isinstance(hook, _WEIGHT_HOOKS)


def _in_torch(thing) -> bool:
    name = getattr(thing, "__module__", None) or ""
    return name == "torch" or name.startswith("torch.")
