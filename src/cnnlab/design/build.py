"""Spec -> ``nn.Module``: one ``nn.Sequential`` whose child ``str(i)`` is spec layer i.

Each layer's module comes from its kind's builder (:mod:`cnnlab.design.kinds`), given the
shape the spec inferred when it was loaded: a linear layer's in_features, BatchNorm1d or 2d,
and a residual block's projection shortcut. Weights keep PyTorch's default initialisation.
The Spec rides along as ``model.spec`` so a run can save it next to the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cnnlab.design import kinds
from cnnlab.design.layers import Conv2dSame, Residual
from cnnlab.design.spec import Spec, load_spec
from cnnlab.errors import SpecError

__all__ = ["Conv2dSame", "Residual", "build"]


def build(spec_or_source: Spec | Mapping | str | Path) -> nn.Sequential:
    """The model a spec describes: ``nn.Sequential`` with child ``str(i)`` = spec layer i.

    Accepts whatever :func:`load_spec` does (Spec, dict, preset name, path, text); a Spec
    load_spec returned is used as it is, not validated again.
    Input (B, *spec.input) -> logits (B, classes) for a classifier spec. The validated Spec is
    attached as ``model.spec``.

    >>> sum(p.numel() for p in build("fmnist-tf").parameters())
    3274634
    """
    spec = load_spec(spec_or_source)
    try:
        model = nn.Sequential(*kinds.modules(spec.layers, spec.input))
    except (RuntimeError, MemoryError) as error:  # torch's "can't allocate memory": a traceback
        if isinstance(error, RuntimeError) and "allocate" not in str(error):
            raise
        with torch.device("meta"):  # the same layers, shapes only, to count them
            n = sum(
                p.numel()
                for p in nn.Sequential(*kinds.modules(spec.layers, spec.input)).parameters()
            )
        raise SpecError(
            f"spec {spec.name!r} does not fit in memory: its {n:,} parameters take "
            f"{n * 4 / 2**30:.1f} GiB as float32; `cnnlab summary` shows where they are "
            "(a flatten head's first linear layer, mostly): use fewer units or a gap head"
        ) from None
    model.spec = spec
    return model
