"""Lazy layers (nn.LazyConv2d, nn.LazyLinear, nn.LazyBatchNorm2d, ...) given their shapes
from a run's input shape: a fresh instance passed to `load_run(path, model=...)`, built as in
training, is lazy again, and comparing or loading weights reads shapes it does not have yet.

PyTorch's own way: one forward on a batch of the input's shape (its "dry run"), which
cnnlab makes itself wherever the input shape is known: `train` of a module or of `--model`
code (`fit.check_fit`, the data's shape), a run reopened (`load_run`, its recorded shape),
`cnnlab import` and `cnnlab summary` (`--input` or the data's). Where none is known, the
user is asked for the dry run (`check_materialized`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from cnnlab.errors import SpecError
from cnnlab.inspect import device_of


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


def check_materialized(model: nn.Module, who: str) -> None:
    """SpecError when a parameter or buffer is still lazy (nn.LazyConv2d, nn.LazyLinear, ...)
    and no input shape is known to give it one: it has no shape until a first forward, and
    moving, counting or loading weights fails in torch with a traceback. The fix is
    PyTorch's own: one forward on a dummy batch."""
    lazy = lazy_names(model)
    if lazy:
        raise SpecError(
            f"{who} {lazy[0]} is a lazy parameter (nn.Lazy* layer) with no shape yet; run the "
            "model once on a dummy batch before returning it: model(torch.zeros(1, C, H, W))"
        )
