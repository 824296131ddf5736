"""Training's own check forwards, unseen by the user's forward hooks: `unhooked(model)`.

Before the first step train runs the user's model in training mode on two zero images to
read its autograd graph (`fit._check_graph`, `fit.graph_walk`: the no-gradient note and
DDP's options). A forward hook of the user's (a counter, a logger, an activation store)
saw those forwards as if they were training's, and one that raises stopped train before a
step. Inside `unhooked` the model's forward and forward-pre hooks, and torch's global ones,
are set aside; torch's own (spectral_norm's, weight_norm's and pruning's pre-hooks, which
compute the weight the forward uses) stay. Backward hooks stay: no backward runs here.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules import module as torch_module

# The forward-side hook tables of a module, and the globals of the same kinds.
_TABLES = ("_forward_pre_hooks", "_forward_hooks")
_GLOBALS = ("_global_forward_pre_hooks", "_global_forward_hooks")


@contextmanager
def unhooked(model: nn.Module) -> Iterator[nn.Module]:
    """`model` with every forward and forward-pre hook not torch's own (`torch_own`) set
    aside, on its modules and torch's global tables; each table as it was afterwards, the
    forward raised or not. A hook registered inside the block is dropped (`preserved`
    drops it too). TorchScript modules keep theirs: their tables are C++'s."""
    held = []
    for m in model.modules():
        if isinstance(m, torch.jit.ScriptModule):
            continue
        for table in _TABLES:
            hooks = getattr(m, table)
            if any(not torch_own(h) for h in hooks.values()):
                held.append((m, table, hooks))
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


def torch_own(hook) -> bool:
    """Whether `hook` is torch's code: a function of a torch module, or an object of a
    torch class or a subclass of one (a user's pruning method built on
    torch.nn.utils.prune's)."""
    if inspect.isfunction(hook) or inspect.ismethod(hook):
        return _in_torch(hook)
    return any(_in_torch(kind) for kind in type(hook).__mro__ if kind is not object)


def _in_torch(thing) -> bool:
    name = getattr(thing, "__module__", None) or ""
    return name == "torch" or name.startswith("torch.")
