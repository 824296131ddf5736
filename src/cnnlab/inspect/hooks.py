"""`Hooks`: forward hooks registered on a model's modules together, and removed together.

Every way of looking inside a model during a forward pass (`Capture`, `CallOrder`,
`ActivationSites`, `first_called`) hooks modules for the length of a block. A hook left behind
keeps firing in the user's later forward passes (and keeps its tensors alive), so the set is
all or nothing: if registering one of them fails, those already registered are removed before
the error propagates (a context manager whose `__enter__` raises never gets its `__exit__`),
and leaving the `with` block removes them all, whether the block ended or raised.

A TorchScript module (`torch.jit.script` on a block of the model) takes no hooks: torch raises.
It is passed over, a block whose inside cannot be seen (`Capture` refuses it as a layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

Pairs = Iterable[tuple[nn.Module, Callable[..., Any]]]


def scripted_whole(model: nn.Module) -> str:
    """'' for a model whose layers hooks can see; for a model scripted whole (torch.jit.script,
    trace or load: a model brought as it was deployed) the reason no layer of it is seen, to
    end a message that found none: the messages said the model had no such layer."""
    if not isinstance(model, torch.jit.ScriptModule):
        return ""
    return (
        "; the model is TorchScript (torch.jit.script, trace or load), whose layers run where "
        "no hook sees them and are no torch.nn layer classes: give cnnlab the nn.Module from "
        "before scripting"
    )


class Hooks:
    """A set of hooks on modules: `before` adds forward pre-hooks, `after` forward hooks, each
    from (module, hook) pairs in order; `remove()` (or leaving `with hooks:`) removes all."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def __len__(self) -> int:
        return len(self._handles)

    def before(self, pairs: Pairs, *, with_kwargs: bool = False) -> Hooks:
        """Register hook(module, args) to run before each module's forward; returns self.
        with_kwargs=True: hook(module, args, kwargs), which sees the keyword arguments too
        (CLIP's layers take hidden_states= by keyword)."""
        return self._register(
            pairs, lambda m, hook: m.register_forward_pre_hook(hook, with_kwargs=with_kwargs)
        )

    def after(self, pairs: Pairs, *, always_call: bool = False) -> Hooks:
        """Register hook(module, args, output) to run after each module's forward (also when
        the forward raises, with always_call=True); returns self."""
        return self._register(
            pairs, lambda m, hook: m.register_forward_hook(hook, always_call=always_call)
        )

    def _register(self, pairs: Pairs, register: Callable[..., RemovableHandle]) -> Hooks:
        try:
            for module, hook in pairs:  # `pairs` may be a generator that raises midway
                if not isinstance(module, torch.jit.ScriptModule):  # which takes no hooks
                    self._handles.append(register(module, hook))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove every hook of the set (again: nothing happens)."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# torch's layers whose tuple is documented as (output, state or weights): the first item is
# the layer's output whatever the rest is (nn.GRU's and nn.RNN's (output, h_n), both 3-D,
# read as nn.LSTM's output already was beside its (h_n, c_n); nn.MultiheadAttention's
# (attn_output, attn_weights), both 3-D with need_weights' default).
FIRST_IS_OUTPUT = (nn.RNNBase, nn.MultiheadAttention)


def output_tensor(out: Any, module: nn.Module | None = None) -> torch.Tensor | None:
    """The tensor a module's output stands for: the output itself, or the first item of a
    plain tuple or list when no other item is a tensor of its number of dims (or `module` is
    one of `FIRST_IS_OUTPUT`: a GRU's state, an attention's weights are 3-D too); else None.
    Hugging Face's layers return `(hidden_states,)` or `(hidden_states, attentions)` (tokens
    3-D, attentions 4-D): PoolFormer's block output is one, the map after both residual sums.
    Without it the last map a hook saw was a shared `drop_path`'s residual branch. A list of
    maps (timm's features_only backbone: `[shallow, ..., deep]`, the head reads the last)
    stands for none of them: its first item is a map the logits may not depend on. The same
    tensor twice is one (Hugging Face FocalNet's last stage returns its hidden states twice);
    its other stages return maps before and after downsampling and are read by their children."""
    if isinstance(out, torch.Tensor):
        return out
    if type(out) not in (tuple, list) or not out or not isinstance(out[0], torch.Tensor):
        return None
    first = out[0]
    if isinstance(module, FIRST_IS_OUTPUT):
        return first
    if any(
        isinstance(o, torch.Tensor) and o.ndim == first.ndim and o is not first for o in out[1:]
    ):
        return None
    return first


def with_output(out: Any, tensor: torch.Tensor) -> Any:
    """`out` with the tensor `output_tensor` found in it replaced by `tensor` (what a forward
    hook returns to hand the rest of the forward a clone)."""
    if isinstance(out, torch.Tensor):
        return tensor
    first = out[0]
    return type(out)([tensor, *(tensor if o is first else o for o in out[1:])])  # each copy
