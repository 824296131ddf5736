"""Lazy layers (nn.LazyConv2d, nn.LazyLinear, nn.LazyBatchNorm2d, ...) given their shapes
from a run's input shape: a fresh instance passed to `load_run(path, model=...)`, built as in
training, is lazy again, and comparing or loading weights reads shapes it does not have yet.

PyTorch's own way: one forward on a batch of the input's shape (its "dry run"), which
`train` makes itself of a module it is given (`fit.check_fit`); a `--model` factory is still
asked to make it (`source.check_materialized`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from cnnlab.errors import SpecError
from cnnlab.inspect import device_of
from cnnlab.train.source import check_materialized


def lazy_names(model: nn.Module) -> list[str]:
    """The names of `model`'s parameters and buffers that are still lazy (no shape yet)."""
    return [n for n, t in (*model.named_parameters(), *model.named_buffers()) if is_lazy(t)]


def materialize(model: nn.Module, input_shape, who: str) -> None:
    """One eval-mode forward of a zero batch of `input_shape` (C, H, W), without gradient,
    when `model` has lazy parameters or buffers: each lazy layer takes its shape and draws
    its initial weights as at a first forward. Eval mode: no running statistics move, no
    dropout mask is drawn; the torch RNG is put back, so the caller's stream is as it was.
    SpecError (`who` first) when the forward fails, or leaves some lazy (a branch this input
    does not reach: `check_materialized`)."""
    if not lazy_names(model):
        return
    x = torch.zeros(2, *input_shape, device=device_of(model))
    rng, modes = torch.get_rng_state(), [(m, m.training) for m in model.modules()]
    try:
        with torch.no_grad():  # not `preserved`: it touches parameters still lazy on a failure
            model.eval()(x)
    except Exception as error:  # the user's code may raise anything
        size = "×".join(map(str, input_shape))
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpecError(
            f"{who} has lazy layers (nn.Lazy*), which take their shapes at a first forward, "
            f"and it cannot run on {size} images: {why}"
        ) from None
    finally:
        torch.set_rng_state(rng)
        for module, mode in modes:
            module.training = mode
    check_materialized(model, who)
