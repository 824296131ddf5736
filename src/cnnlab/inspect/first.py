"""The first module of a kind that a forward pass calls (the stem conv whose filters
explain shows), found by stopping the pass there."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnnlab.inspect.hooks import Hooks
from cnnlab.inspect.logits import check_images
from cnnlab.inspect.preserve import preserved


class _Found(Exception):
    """Raised by a pre-hook to stop a forward pass once it has seen what it looked for."""


def first_called(model: nn.Module, kind: type[nn.Module], x: Tensor) -> str | None:
    """Dotted name of the first `kind` module the forward pass of x calls (None: none is).

    A pre-hook stops the pass there, before that module runs: only the code before it must
    accept x, so the channels and size a later layer expects do not matter. Any other error
    of the forward pass propagates (the caller may try another input).
    """
    found: list[str] = []

    def stop(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            found.append(name)
            raise _Found

        return hook

    named = [(n, m) for n, m in model.named_modules() if n and isinstance(m, kind)]
    with Hooks().before((m, stop(n)) for n, m in named):
        try:
            with preserved(model), torch.no_grad():
                model(check_images(x).clone())  # a forward may change its input in place
        except _Found:
            pass
    return found[0] if found else None  # found[0] even if the model swallowed _Found
