"""The user's model left exactly as it was: `preserved(model)` around every look inside it.

Looking inside a model needs it in eval mode (each image's result independent of the rest of
the batch), often with its parameters frozen (no weight gradient computed), and with hooks
on its layers. None of that may outlive the call: after the block each module's train/eval
flag, each parameter's `requires_grad` and the module's own hooks are as they were, and,
after a train-mode forward, so are the buffers (BatchNorm's running statistics) and the
random-number generators (dropout draws from them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

import torch
from torch import nn
from torch.nn.modules.module import register_module_buffer_registration_hook

from cnnlab.design.summary.copying import compiled_inner, plain_name, unwrapped
from cnnlab.errors import ExplainError

# The per-module hook tables; a hook added to one of them inside `preserved` is removed after.
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# Side tables keyed by the same handle ids (torch keeps flags for some forward hooks there).
_HOOK_FLAGS = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


@contextmanager
def preserved(
    model: nn.Module, *, train: bool = False, requires_grad: bool | None = False
) -> Iterator[nn.Module]:
    """Inside the block: `model` in eval mode (train=True: train mode) with every parameter's
    requires_grad set to `requires_grad` (None: left alone). Afterwards, restored: every
    module's mode, every parameter's requires_grad, every module's hooks (one added inside is
    removed); with train=True also the buffers and the torch RNG states, which a train-mode
    forward moves (BatchNorm statistics, dropout masks). A buffer a forward in the block
    registers (a step counter made at the first call) stays, holding the value it was
    registered with (`_made_buffers`): what the forward did to it after is undone, as for
    the buffers that existed (a check forward's count read 11 after 10 training steps).
    torch.compile'd code runs eagerly in the block (`eager_stance`).

    Frozen parameters (the default) make a forward save fewer tensors and a backward compute
    no weight gradient: the methods that need input or layer gradients only are faster.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    hooks = [(m, {t: set(getattr(m, t)) for t in _HOOK_TABLES}) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if train else []
    rng = torch.get_rng_state() if train else None
    cuda_rng = torch.cuda.get_rng_state_all() if train and torch.cuda.is_initialized() else None
    made = _MadeBuffers(model)
    try:
        model.train(train)
        if requires_grad is not None:
            for p, _ in grads:
                p.requires_grad_(requires_grad)
        # a torch.compile'd submodule runs its Python forward: compiled, its graph took in
        # the hooks (a recompile per hooked layer; a probe's pooling hook failed in inductor)
        with eager_stance():
            yield model
    finally:
        for module, mode in modes:
            module.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
        _remove_new_hooks(hooks)
        made.restore()
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        if rng is not None:
            torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _remove_new_hooks(before: list[tuple[nn.Module, dict[str, set]]]) -> None:
    """Drop every hook registered since `before` was taken (a handle left by a failed call)."""
    for module, tables in before:
        for table, ids in tables.items():
            for key in set(getattr(module, table)) - ids:
                del getattr(module, table)[key]
                for flags in _HOOK_FLAGS:
                    getattr(module, flags, {}).pop(key, None)


class _MadeBuffers:
    """The buffers registered on `model`'s modules from its making to `restore()`, each with
    a copy of the value it was registered with (torch's global buffer-registration hook,
    which also sees `self.name = tensor` on a registered name: its first value is kept).
    The modules keep them (a run's weights hold such a counter: `made_in_forward`); restore
    puts each back to that value."""

    def __init__(self, model: nn.Module):
        # not TorchScript's modules: their tables are C++, and no Python forward adds to them
        python = [m for m in model.modules() if not isinstance(m, torch.jit.ScriptModule)]
        self.owners = {id(m) for m in python}
        self.before = {(id(m), n) for m in python for n in m._buffers}
        self.made: dict[tuple[int, str], tuple[nn.Module, str, torch.Tensor | None]] = {}
        self.handle = register_module_buffer_registration_hook(self._registered)

    def _registered(self, module: nn.Module, name: str, buffer: torch.Tensor | None) -> None:
        key = (id(module), name)
        if id(module) in self.owners and key not in self.before and key not in self.made:
            value = None if buffer is None else buffer.detach().clone()
            self.made[key] = (module, name, value)

    def restore(self) -> None:
        self.handle.remove()
        for module, name, value in self.made.values():
            if name in module._buffers:
                module._buffers[name] = value


# `with inspecting(model):` is `with preserved(model):` (eval mode, frozen parameters), the
# name explain and the explorer were written with.
inspecting = preserved


def reloaded(model: nn.Module) -> nn.Module:
    """`model` in eval mode after its weights changed in place (a load_state_dict, an EMA
    step): put in train mode and back, the point where modules that cache tensors derived from
    their weights for inference drop them. Hugging Face's and timm's LeViT fill an
    `attention_bias_cache` at their first eval-mode forward and clear it only in `.train()`;
    an EMA copy kept in eval mode evaluated every later epoch with its first validation's
    attention biases. Parameters and buffers are untouched."""
    model.train()  # not chained: a user's train() override may forget `return self`
    model.eval()
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The module that holds the weights: DDP, nn.DataParallel and torch.compile wrappers are
    looked through, in any nesting, so hooks land on modules that run and names are the
    user's (`features.3`, not `module.features.3` or `_orig_mod.features.3`)."""
    return unwrapped(model)[0]


def inner_name(model: nn.Module, name: str) -> str:
    """`name`, a layer as `model`'s wrappers name it (`module.features.3` under
    nn.DataParallel, `_orig_mod.features.3` under torch.compile), as `unwrap(model)` names it
    (`features.3`); a name without the wrappers' prefix (or no str) is returned as given."""
    return unwrap_layer(model, name)[1]


def unwrap_layer(model: nn.Module, name):
    """(unwrap(model), inner_name(model, name)): a wrapped model's module and the layer's
    name in it, for a function given both."""
    inner, prefix = unwrapped(model)
    if prefix and isinstance(name, str) and name.startswith(prefix):
        name = name[len(prefix) :]
    return inner, name


def decompiled(model: nn.Module) -> nn.Module:
    """`model` with every torch.compile wrapper in it replaced by the module it wraps (the
    same parameters; a model compiled whole comes back as its inner module), changed in
    place. For the commands that open a run: each compiled a graph per batch shape (10-15 s
    for an 8×8-image net that runs in milliseconds), dynamo traced their hooks (graph
    breaks, recompile limits, warnings), and layers were named `features._orig_mod.3`; the
    eager forward computes the same logits. State-dict names lose `_orig_mod.` too
    (`compiled_names_as` maps a file's names to them)."""
    model = _innermost(model)
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            if child is not None and _innermost(child) is not child:
                module._modules[name] = _innermost(child)
    for block in _READING:  # built inside `reading_eagerly`: its compiled code too
        block.eager_if_compiled()
    return model


def eager_stance() -> AbstractContextManager:
    """torch.compile'd code runs eagerly in the block (torch.compiler.set_stance(
    "force_eager")) once torch._dynamo is imported; else the block changes nothing.
    torch.compile and @torch.compile import dynamo when they run, so a model that exists and
    has compiled code has it imported; importing it only to set the stance cost 1.3-1.9 s
    (the classifier check of an 8×8 net: 0.002 s). On torch < 2.6 (no set_stance) compiled
    code stays compiled."""
    stance = getattr(torch.compiler, "set_stance", None)
    if stance is None or "torch._dynamo" not in sys.modules:
        return nullcontext()
    return stance("force_eager")


class _Reading:
    """One `reading_eagerly` block: the eager stance, entered at most once, left at its end."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack, self.eager = stack, False

    def eager_if_compiled(self) -> None:
        if not self.eager and "torch._dynamo" in sys.modules:
            self.stack.enter_context(eager_stance())
            self.eager = True


_READING: list[_Reading] = []  # the open `reading_eagerly` blocks


@contextmanager
def reading_eagerly() -> Iterator[None]:
    """torch.compile'd code runs eagerly in the block (`eager_stance`), from its start if
    torch._dynamo is imported, else from when `decompiled` returns a model whose code
    imported it (loading a file with @torch.compile, a factory calling torch.compile): for
    the commands that only read a model (load_run, import and summary build it through
    `decompiled`), which compiled a graph per batch shape for a few batches, without
    importing dynamo (1.3-1.9 s) for the models that compile nothing. Code that first
    compiles after its model is built (inside its forward) is compiled as before."""
    with ExitStack() as stack:
        block = _Reading(stack)
        _READING.append(block)
        try:
            block.eager_if_compiled()
            yield
        finally:
            _READING.remove(block)


def compiled_names_as(state: dict, names: Iterable[str]) -> dict:
    """`state` (a weights file's) with each name that differs from one of `names` (a model's)
    only by torch.compile's `_orig_mod.` segments renamed to it: a model trained compiled
    saves `features._orig_mod.0.weight`, its eager copy (`decompiled`, or the user's fresh
    instance) names it `features.0.weight`, and the other way round. Other names are kept."""
    by_plain = {plain_name(k): k for k in state}
    renamed = dict(state)
    for name in names:
        saved = by_plain.get(plain_name(name))
        if name not in state and saved is not None and saved in renamed:
            renamed[name] = renamed.pop(saved)
    return renamed


def _innermost(module: nn.Module) -> nn.Module:
    """The module torch.compile wrappers (OptimizedModule, nested or not) hold, else `module`.
    (`copying.compiled_inner`, the summary's test of a wrapper)."""
    while (inner := compiled_inner(module, vars(module))) is not None:
        module = inner
    return module


def is_compiled_inner(name: str, names: set[str] | dict) -> bool:
    """Whether layer `name` is the module a torch.compile wrapper in `names` wraps (`3._orig_mod`
    of `3`): both run on the same input to the same output, and `3` is the name the user's
    model uses, so a list of layers offers the wrapper only."""
    parent, _, last = name.rpartition(".")
    return last == "_orig_mod" and parent in names


def needs_gradients(method: str) -> None:
    """ExplainError inside `torch.inference_mode()`: `method` takes gradients, and inference
    mode makes every tensor computed in it a tensor without autograd history, which
    `torch.enable_grad()` cannot undo (`torch.no_grad()` around a call is fine)."""
    if torch.is_inference_mode_enabled():
        raise ExplainError(
            f"{method} needs gradients, and torch.inference_mode() switches autograd off; "
            f"call {method} outside the torch.inference_mode() block (torch.no_grad() is fine)"
        )
