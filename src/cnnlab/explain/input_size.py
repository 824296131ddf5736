"""activation_maximization's input_size checked against the model: three positive ints
(C, H, W), C the channels the model's first conv takes, so a wrong C is told as input_size's
(with the fixed size), not as images of the wrong shape the caller never gave."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from cnnlab.errors import ExplainError
from cnnlab.inspect import device_of, dtype_of
from cnnlab.inspect.first import first_called


def check_size(model: nn.Module, input_size) -> None:
    """ExplainError unless input_size is (C, H, W), three positive ints (a (H, W) was made
    into (1, H, W) images and refused as images with the wrong channels), whose C is the
    in_channels of the first Conv2d the forward calls."""
    size = tuple(input_size) if isinstance(input_size, tuple | list | torch.Size) else ()
    if len(size) != 3 or not all(isinstance(v, int) and v >= 1 for v in size):
        raise ExplainError(
            f"input_size must be three positive integers (C, H, W), got {input_size!r}"
        )
    name, takes = _first_conv(model, size)
    if takes is not None and takes != size[0]:
        fixed = (takes, *size[1:])
        raise ExplainError(
            f"input_size {size} has {size[0]} channel{'s' * (size[0] != 1)} where the "
            f"model's first layer ({name!r}, Conv2d) takes {takes}: give input_size={fixed}"
        )


def _first_conv(model: nn.Module, size: tuple[int, int, int]) -> tuple[str, int | None]:
    """(name, in_channels) of the first Conv2d an image of `size` reaches; None for channels
    where none is reached or its in_channels is not known yet (a lazy conv)."""
    x = torch.zeros((1, *size), dtype=dtype_of(model), device=device_of(model))
    try:
        name = first_called(model, nn.Conv2d, x)
    except Exception:  # a layer before any conv refuses x: the forward then says why, itself
        return "", None
    conv = dict(model.named_modules()).get(name or "")
    if not isinstance(conv, nn.Conv2d) or isinstance(conv, LazyModuleMixin):
        return "", None
    return name or "", conv.in_channels
