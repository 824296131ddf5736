"""Activations found where they are *computed*, not by module type alone.

A `TorchFunctionMode` sees every call of an activation function (`nn.ReLU(inplace=True)`,
`F.relu`, `x.relu()`, `torch.sigmoid`, ...; the calls `design.activations` knows) while
per-module hooks say which module's forward made the call. A site is named

* after its module when an activation module made it (`features.2`, `layer1.0.relu`),
* `<module>.<kind>()` for a functional call inside a module's forward (`relu()` at the top
  level, `block.gelu()` inside `block`),
* with ` #k` appended for the k-th call of the same site in one forward, as the summary
  names calls (torchvision's `BasicBlock` calls its one `self.relu` twice: `layer1.0.relu`,
  `layer1.0.relu #2`).

An activation's channels are not always on dim 1: a ConvNeXt block permutes its map to
(B, H, W, C) for LayerNorm and its pointwise Linear layers, a ViT's MLP acts on (B, N, C).
The same mode follows where the channels are (`cnnlab.inspect.layouts`), so each site's
output is handed over with its channels on dim 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnnlab.design.activations import Activation, activation_of, activation_of_call
from cnnlab.design.summary.render import call_label
from cnnlab.inspect.hooks import Hooks
from cnnlab.inspect.layouts import Layouts


class ActivationSites(TorchFunctionMode):
    """`with ActivationSites(model, on_call):` calls on_call(site, activation, output) for
    every activation computed inside the block with an output of ≥ 2 dimensions, handed over
    as (N, C, ...): a site whose channels are on another dim (a ConvNeXt's (B, H, W, C)) is
    given as a view with them moved to dim 1. The model's hooks are registered on entry and
    removed on exit."""

    def __init__(self, model: nn.Module, on_call: Callable[[str, Activation, Tensor], None]):
        super().__init__()
        self.model = model
        self.on_call = on_call
        self.stack: list[tuple[str, nn.Module]] = []
        self.calls: dict[str, int] = {}
        self.layouts = Layouts()
        self._hooks = Hooks()

    def __enter__(self) -> ActivationSites:
        modules = list(self.model.named_modules())
        self._hooks.before((module, self._enter(name, module)) for name, module in modules)
        self._hooks.after(((module, self._leave) for _, module in modules), always_call=True)
        try:
            return super().__enter__()
        except BaseException:
            self._hooks.remove()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._hooks.remove()

    def _enter(self, name: str, module: nn.Module) -> Callable:
        def hook(mod: nn.Module, args: Any) -> None:
            if mod is self.model and not self.stack:
                self.calls.clear()  # a new forward pass: call counters restart
                self.layouts.clear()
            self.stack.append((name, module))

        return hook

    def _leave(self, mod: nn.Module, args: Any, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    def _site_name(self, kind: str) -> str:
        name, module = self.stack[-1] if self.stack else ("", None)
        if module is None or activation_of(module) is None:
            name = f"{name}.{kind}()" if name else f"{kind}()"
        k = self.calls.get(name, 0) + 1
        self.calls[name] = k
        return call_label(name, k)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.layouts.note(func, args, kwargs, result)  # an attention's tuple too
        if not isinstance(result, Tensor):
            return result
        activation = activation_of_call(func, args, kwargs)
        if activation is not None and result.ndim >= 2:
            channels = result.movedim(self.layouts.of(result), 1)
            self.on_call(self._site_name(activation.name), activation, channels)
        return result
