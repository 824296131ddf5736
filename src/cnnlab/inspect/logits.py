"""Running a user's model on images and reading what it says: the images checked, the
forward pass with a clear error when they do not fit, the (B, K) logits picked from any
output, and the class to explain per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import ExplainError

# How to pick the logits from a model that returns a tuple, list or dict: an index, a key,
# or a function of the raw output. None means the output must already be a (B, K) tensor.
OutputSelector = int | str | Callable[[Any], Tensor] | None


def check_images(x: Tensor, *, flat: bool = False) -> Tensor:
    """x itself if it is a float (B, C, H, W) tensor with B ≥ 1 (flat=True: any float
    (B, ...) with at least 2 dimensions, e.g. (B, F) for an MLP); ExplainError naming the fix."""
    if not isinstance(x, Tensor):
        raise ExplainError(f"images must be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if (x.dim() < 2 if flat else x.dim() != 4) or x.shape[0] == 0:
        raise ExplainError(
            f"images must have shape (B, C, H, W) with B ≥ 1, got {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise ExplainError(
            f"images must be floating point, got {x.dtype} of shape {tuple(x.shape)}; "
            "normalise them first, as for training (e.g. Run.preprocess)"
        )
    return x


def select_logits(out: Any, output: OutputSelector = None) -> Tensor:
    """The (B, K) logits inside a model's raw output, chosen by `output`."""
    if callable(output):
        out = output(out)
    elif output is not None:
        try:
            out = out[output]
        except (KeyError, IndexError, TypeError) as error:
            raise ExplainError(
                f"output={output!r} does not select anything in the model's "
                f"{type(out).__name__} output: {error}"
            ) from error
    if not isinstance(out, Tensor):
        how = "a key" if isinstance(out, dict) else "an index"
        raise ExplainError(
            f"the model returns a {type(out).__name__}, not a logits tensor; pass output= "
            f"({how} or a function) to pick the logits"
        )
    if out.dim() != 2:
        raise ExplainError(
            f"the model's logits must have shape (B, K), got {tuple(out.shape)}; "
            "pass output= (a function) to reduce them"
        )
    return out


def forward(
    model: nn.Module, x: Tensor, output: OutputSelector = None, *, logits: bool = True
) -> Any:
    """model(x) as (B, K) logits (logits=False: the raw output, for methods that only read
    layers); a clear error when the images do not fit the model."""
    try:
        out = model(x)
    except RuntimeError as error:  # shape, channel or dtype mismatch inside a torch op
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExplainError(
            f"the model cannot run on images of shape {tuple(x.shape)} ({first}); give images "
            "with the channels and size the model was trained on"
        ) from error
    return select_logits(out, output) if logits else out


def resolve_target(target: int | Iterable[int] | Tensor | None, logits: Tensor) -> Tensor:
    """Class index per image, (B,) int64; None means the predicted class."""
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    t = torch.as_tensor(target, device=logits.device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ExplainError(f"target must be integer class indices, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ExplainError(f"target has {t.numel()} entries for a batch of {batch} images")
    bad = t[(t < 0) | (t >= classes)]
    if bad.numel():
        raise ExplainError(
            f"target {bad[0].item()} is outside the model's classes 0..{classes - 1}"
        )
    return t.clone()
