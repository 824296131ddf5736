"""The memory layout torch's CPU kernels give an output, for the outputs the trace makes from
shapes (`shapes.py`, `shortcuts.py`): a later `.view` of it then fails or runs as in torch."""

from __future__ import annotations

import torch
from torch import Tensor
from torch._prims_common import suggest_memory_format


def layout(*inputs: Tensor) -> torch.memory_format:
    """The layout torch gives a conv's or a pool's output on the CPU: channels-last where its
    input (or a conv's weight) is strictly so, else contiguous (strides checked against
    torch's in the tests): a later `.view` then fails or runs as it does in torch."""
    for t in inputs:
        if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=CL):
            return CL
    return torch.contiguous_format


CL = torch.channels_last
_LAST = {4: CL, 5: torch.channels_last_3d}


def suggested(x: Tensor) -> torch.memory_format:
    """torch's `suggest_memory_format(x)`, the layout its CPU kernel gives a constant pad's
    output (channels-last for a channels-last map, even one not dense), asked only where x
    is not plainly contiguous (the function is Python: a few µs)."""
    last = _LAST.get(x.dim())
    if x.is_contiguous() and (last is None or not x.is_contiguous(memory_format=last)):
        return torch.contiguous_format
    return suggest_memory_format(x)


def dense(x: Tensor) -> bool:
    """x fills its memory in one of torch's layouts: an element-wise output then has x's."""
    return x.is_contiguous() or (
        x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    )
