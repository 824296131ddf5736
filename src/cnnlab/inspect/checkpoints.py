"""Gradients through activation checkpoints (`torch.utils.checkpoint`).

A checkpointed block keeps no activations in the forward and recomputes them in the backward.
`use_reentrant=False` is plain autograd to everything here. `use_reentrant=True` (torch's
default before 2.4, still chosen by many models, and by Hugging Face's
`gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})`) runs
the block under `torch.no_grad()` and, in the backward, runs it again and calls a nested
`torch.autograd.backward` on it, which torch allows only inside a plain `.backward()`:
`torch.autograd.grad` raises ("incompatible with .grad()"). `gradients` takes that path when
the graph passes through such a block, and leaves `.grad` as it found it either way.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor

from cnnlab.errors import ExplainError

_REENTRANT = "CheckpointFunctionBackward"  # the backward node of use_reentrant=True
# autograd's words for a saved tensor changed after the forward saved it, and what it names
_CHANGED = "modified by an inplace operation"
_WHICH = re.compile(r"\[torch\.\w+ \[([\d, ]*)\]\], which is output \d+ of (\w+)")


@contextlib.contextmanager
def backward_checked() -> Iterator[None]:
    """Around a backward pass through a user's model: autograd's RuntimeError for a tensor
    the forward changed in place after an op saved it for the backward (an
    nn.ReLU(inplace=True) on a block's input that its shortcut reads afterwards) becomes an
    ExplainError saying so and how to fix it. Such a model cannot be trained either: its
    own `loss.backward()` fails alike, whatever cnnlab does."""
    try:
        yield
    except RuntimeError as err:
        if _CHANGED not in str(err):
            raise
        found = _WHICH.search(str(err))
        which = f"a {found[1].replace(', ', '×')} output of {found[2]}" if found else "a tensor"
        raise ExplainError(
            f"the model's backward pass fails: its forward changed {which} in place after an "
            "op had kept it for the backward (torch: 'modified by an inplace operation'), as "
            "an nn.ReLU(inplace=True) on a tensor another branch still reads does; the model "
            "cannot be trained so either. Fix: make that in-place op out of place (for "
            "every activation: for m in model.modules(): if hasattr(m, 'inplace'): "
            "m.inplace = False)"
        ) from err


def through_reentrant(out: Tensor) -> bool:
    """Whether out's autograd graph passes through a reentrant checkpoint (its backward node).
    (A walk of the graph: 0.09 ms for a ResNet-18's 74 nodes, frozen weights, one thread.)"""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        if type(node).__name__ == _REENTRANT:
            return True
        seen.add(node)
        stack.extend(n for n, _ in node.next_functions)
    return False


def gradients(
    out: Tensor, inputs: Sequence[Tensor], restore: Iterable[Tensor] = ()
) -> tuple[Tensor | None, ...]:
    """∂out/∂inputs for a scalar `out`, None for an input `out` does not depend on: as
    `torch.autograd.grad(out, inputs, allow_unused=True)`, also through reentrant checkpoints.

    There it is `out.backward()` with a hook on each input that sums the gradients it gets
    (a leaf used inside a checkpoint gets one from the recompute's backward and one from the
    outer). `.backward()` accumulates into `.grad` of every leaf that requires grad: the
    `.grad` of `inputs` and of `restore` (the model's parameters) is put back as it was.
    """
    if not through_reentrant(out):
        with backward_checked():
            return torch.autograd.grad(out, list(inputs), allow_unused=True)
    found: list[Tensor | None] = [None] * len(inputs)
    leaves = {id(t): t for t in (*inputs, *restore) if t.is_leaf}
    saved = {key: t.grad for key, t in leaves.items()}
    for t in leaves.values():
        t.grad = None  # else the backward adds into the saved tensor, in place
    handles = [t.register_hook(_adder(found, i)) for i, t in enumerate(inputs) if t.requires_grad]
    try:
        with backward_checked():
            out.backward()
    finally:
        for handle in handles:
            handle.remove()
        for key, t in leaves.items():
            t.grad = saved[key]
    return tuple(found)


def _adder(found: list[Tensor | None], i: int) -> Callable[[Tensor], None]:
    def hook(grad: Tensor) -> None:
        found[i] = grad if found[i] is None else found[i] + grad

    return hook


def require_graph(t: Tensor, layer: str, method: str) -> None:
    """ExplainError unless `t`, what `layer` gave in a forward from an input that requires
    grad, carries autograd history: a method that differentiates it would get an error from
    autograd that names no layer, or (a loss with other terms) silently a wrong result."""
    if not t.requires_grad:
        raise ExplainError(
            f"{method} needs the gradient of layer {layer!r}, and the forward computes that "
            "layer without autograd: under torch.no_grad() or after .detach(), or inside "
            "torch.utils.checkpoint(..., use_reentrant=True), which runs its block without "
            "autograd (it recomputes it in the backward); pass use_reentrant=False there or "
            "switch checkpointing off, or choose a layer outside that block"
        )
