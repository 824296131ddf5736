"""`Capture`: a layer's own output (or input) during a forward pass, and its gradient.

In-place ops: a forward hook replaces the captured layer's output, for the rest of the
forward pass, by a *clone*. A later `ReLU(inplace=True)` or `out += identity` then writes into
the clone, and the captured tensor keeps the layer's own value and its own gradient, exactly
as on a copy of the model without in-place ops (DESIGN.md; tests/test_explain_models.py
checks this against such a copy).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor, with_output
from cnnlab.inspect.names import an, split_call
from cnnlab.inspect.order import resolve_layer


class Capture:
    """Forward hooks that record the outputs of named layers during `with Capture(...)`.

    outputs[name] is the tensor the layer returned on its last call in the forward pass (of a
    Hugging Face layer's `(hidden_states, ...)`, the first item: see `output_tensor`).
    leaf=True: the output is detached and made a leaf that requires grad, and grad mode is
    switched on from there: the forward up to the layer can then run under `torch.no_grad()`
    (no graph, no saved tensors) and backward stops at the layer. The rest of the forward
    pass always sees a clone, so later in-place ops cannot overwrite the captured value.
    With leaf=True the layers' own full backward hooks (a guided-backprop clamp, a logger) are
    held back during the block: a gradient taken to the layer's output never reaches them in
    plain autograd, while here, no input of the layer requiring grad, torch would call them
    with grad_input None (and warn).
    inputs=True: record each layer's (first) input instead, before the layer runs; the layer
    gets a clone, so an in-place layer (ReLU(inplace=True)) leaves the recorded input intact.
    transform: record transform(output) computed inside the hook (before any later op can
    touch the output), and leave the output itself alone: no clone, no full map kept; a
    mapping {name: transform} gives each layer its own.
    grads=True: also record, in `gradients[name]`, (output, its gradient) for the call of the
    layer whose gradient a later backward delivers first: the last call in the forward (a
    backward runs the calls in reverse). Inside a reentrant activation checkpoint the output
    that gets one is the block's recomputation in the backward (the forward's carries no
    graph), so the hooks must stay on until the backward has run; see `inspect.checkpoints`.
    calls=True: each name is a call's label, as the summary and the explorer label calls
    (`relu` the first call of module `relu`, `relu #2` its second: `call_label`), and
    outputs[label] is that call's output in each forward of `model` (the calls are counted
    from its start), not the module's last.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Iterable[str],
        *,
        leaf: bool = False,
        inputs: bool = False,
        transform: Callable[[Tensor], Tensor] | Mapping[str, Callable] | None = None,
        grads: bool = False,
        calls: bool = False,
    ):
        self.model = model
        self.names = list(dict.fromkeys(names))
        every = dict(model.named_modules()) if calls else {}
        # name -> (its module's name, the call it reads; 0: each, the last kept)
        self.calls = {n: split_call(n, every) if calls else (n, 0) for n in self.names}
        self.modules = [resolve_layer(model, self.calls[n][0]) for n in self.names]
        for name, module in zip(self.names, self.modules, strict=True):
            if isinstance(module, torch.jit.ScriptModule):
                raise ExplainError(
                    f"layer {name!r} is a TorchScript module (torch.jit.script), which takes no "
                    "hooks, so its output cannot be read; choose a layer outside it, or build "
                    "the model without torch.jit.script"
                )
        self.leaf = leaf
        self.inputs = inputs
        self.transform = transform
        self.grads = grads
        self.outputs: dict[str, Tensor] = {}
        self.others: dict[str, str] = {}  # name -> the type of a call's output of no tensor
        self.gradients: dict[str, tuple[Tensor, Tensor]] = {}
        self.counts: dict[str, int] = {}  # module name -> its calls so far in this forward
        self.by_call: dict[str, dict[int, str]] = {}  # calls mode: `_hooked`
        self._hooks = Hooks()
        self._held: list[tuple[nn.Module, OrderedDict]] = []

    def _called(self, base: str) -> str | None:
        """The name recording this call of module `base` (hooked under `base`), if any."""
        if base in self.by_call:  # calls mode: count it, then the label of that call
            self.counts[base] = self.counts.get(base, 0) + 1
            return self.by_call[base].get(self.counts[base])
        return base

    def _pre_hook(self, base: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> Any:
            name = self._called(base)
            if name is None or not args or not isinstance(args[0], Tensor):
                return None
            self.outputs[name] = args[0]
            return (args[0].clone(), *args[1:])

        return hook

    def _hook(self, base: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, whole: Any) -> Any:
            name = self._called(base)
            if name is None:
                return None
            out = output_tensor(whole, module)  # as CallOrder reads it
            if out is None:
                self.others[name] = type(whole).__name__
                return None  # nothing to capture; `tensor()` says so if asked
            if self.transform is not None:
                each = isinstance(self.transform, Mapping)
                self.outputs[name] = (self.transform[name] if each else self.transform)(out)
                return None
            if self.leaf:
                out = out.detach().requires_grad_(True)
                torch.set_grad_enabled(True)  # the enclosing no_grad() restores it on exit
            self.outputs[name] = out
            if self.grads and out.requires_grad:
                out.register_hook(self._grad_hook(name, out))
            return with_output(whole, out.clone())

        return hook

    def _grad_hook(self, name: str, out: Tensor) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            self.gradients.setdefault(name, (out, grad))

        return hook

    def __enter__(self) -> Capture:
        self.outputs, self.gradients, self.others, self.counts = {}, {}, {}, {}
        named = self._hooked()
        if self.by_call:  # each forward of the model counts the calls from 1
            self._hooks.before([(self.model, lambda module, args: self.counts.clear())])
        if self.inputs:
            self._hooks.before((module, self._pre_hook(name)) for name, module in named)
        else:
            self._hooks.after((module, self._hook(name)) for name, module in named)
        if self.leaf:
            unique = {id(m): m for m in self.modules}.values()  # a layer under two names
            self._held = [(m, m._backward_hooks) for m in unique if m._backward_hooks]
            for module, _ in self._held:
                module._backward_hooks = OrderedDict()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()
        for module, hooks in self._held:
            module._backward_hooks = hooks
        self._held = []

    def _hooked(self) -> list[tuple[str, nn.Module]]:
        """(the name its hooks are made for, module) of each module to hook. In calls mode
        one hook a module, made for its name, serves all its labels (`by_call`: module name
        -> {call: label}), so each call is counted once."""
        self.by_call: dict[str, dict[int, str]] = {}
        hooked = {}
        for name, module in zip(self.names, self.modules, strict=True):
            base, call = self.calls[name]
            if call:
                self.by_call.setdefault(base, {})[call] = name
            hooked[base if call else name] = module
        return list(hooked.items())

    def tensor(self, name: str) -> Tensor:
        """The captured output of `name`; ExplainError if the forward never produced one."""
        if name not in self.outputs:
            raise ExplainError(f"{self.missing(name)}; choose another layer")
        return self.outputs[name]

    def missing(self, name: str) -> str:
        """Why `name` has no captured output: what it returned instead, or that the forward
        did not call it ("it is not called, or its output is neither ..." said both)."""
        if name in self.others:
            kind = self.others[name]
            return (
                f"layer {name!r} returns {an(kind)} {kind}, which is neither a tensor nor a "
                "tuple/list whose first item is the only tensor of its rank"
            )
        base, call = self.calls.get(name, (name, 0))
        made = self.counts.get(base, 0)
        if call and made:  # called, fewer times than the label says
            labels = ", ".join(call_label(base, k) for k in range(1, made + 1))
            return (
                f"layer {base!r} is called {made} time{'s' * (made != 1)} in the forward "
                f"pass ({labels}), so {name!r} names none of its calls"
            )
        return f"layer {name!r} is not called in the forward pass"
