"""What a model's forward computes, seen as it runs: its activation sites and where it
normalises. The cure for a vanishing gradient depends on it (`advice`): a squashing
activation to replace, a normalisation to add or already there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.activations import ACTIVATIONS, Activation
from cnnlab.inspect import ActivationSites


@dataclass(frozen=True)
class Makeup:
    """The activations and normalisations one forward computed, each once, in call order."""

    activations: tuple[tuple[str, str], ...]  # (site, kind): sites named as `ActivationSites`'
    # (module whose forward computed it, or "<kind>()" at the top level; kind: batch_norm ...)
    norms: tuple[tuple[str, str], ...]
    hidden: tuple[str, ...] = ()  # TorchScript modules, whose calls no hook sees
    # the activation sites a normalisation was computed before, since the activation before
    # (conv -> BN -> ReLU; ResNet's BN -> + -> ReLU): adding one there is no advice
    normed: tuple[str, ...] = ()
    # the modules whose output (some tensor of it) required grad: computed with autograd
    graphed: frozenset[str] = frozenset()

    @property
    def saturating(self) -> tuple[tuple[str, str], ...]:
        """The sites of squashing activations (the table's ``saturates``: sigmoid, tanh,
        hardtanh, hardsigmoid), whose derivative is small or 0 over most of their input."""
        return tuple((s, k) for s, k in self.activations if ACTIVATIONS[k].saturates is not None)


# The normalisations a forward may compute, named by kind: the modules' calls (nn.BatchNorm2d
# calls F.batch_norm) and torch's own functions, as a functional forward may call them.
_NORMS = {
    fn: name
    for name in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")
    for fn in (getattr(F, name, None), getattr(torch, name, None))
    if fn is not None
}


class Seen(ActivationSites):
    """`ActivationSites` that also notes where a normalisation is computed: `makeup()`;
    `then(site, activation, output)`, if given, is called for each activation too."""

    def __init__(self, model: nn.Module, then: Callable | None = None) -> None:
        super().__init__(model, self._activation)
        self.then = then
        self.activations: dict[str, str] = {}
        self.norms: dict[str, str] = {}
        self.normed: dict[str, bool] = {}
        self._after_norm = False  # a normalisation computed since the last activation
        self.graphed: set[str] = set()

    def _activation(self, site: str, activation: Activation, y: Tensor) -> None:
        self.activations.setdefault(site, activation.name)
        self.normed.setdefault(site, self._after_norm)
        self._after_norm = False
        if self.then is not None:
            self.then(site, activation, y)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            kind = _NORMS.get(func)
        except TypeError:  # an unhashable callable is no normalisation
            kind = None
        if kind is not None:
            name = self.stack[-1][0] if self.stack else ""
            self.norms.setdefault(name or f"{kind}()", kind)
            self._after_norm = True
        return super().__torch_function__(func, types, args, kwargs)

    def _leave(self, mod: nn.Module, args: Any, output: Any) -> None:
        items = output if isinstance(output, (tuple, list)) else (output,)
        if self.stack and any(isinstance(t, Tensor) and t.requires_grad for t in items):
            self.graphed.add(self.stack[-1][0])  # (nn.MultiheadAttention: (output, weights))
        super()._leave(mod, args, output)

    def makeup(self, hidden: tuple[str, ...]) -> Makeup:
        normed = tuple(s for s, on in self.normed.items() if on)
        acts, norms = tuple(self.activations.items()), tuple(self.norms.items())
        return Makeup(acts, norms, hidden, normed, frozenset(self.graphed))
