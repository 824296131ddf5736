"""Layers the notes name that PyTorch lacks, the heads, and the activation registry (§3–§5).

* :class:`ConcatPool2d`: max and average pooling side by side, joined along channels (§3.3);
* :class:`AdaptiveConcatPool2d`: the same to a fixed output size (the fastai-style head);
* :class:`GlobalAvgPool2d` (alias ``GAPHead``): one number per map, (B, C, H, W) -> (B, C) (§3.1);
* ``Flatten``: ``nn.Flatten`` re-exported, the classic dense head's first step (§5.2);
* :class:`Conv2dSame` (PyTorch's "same" padding at a stride > 1) and :class:`Residual`
  (y = body(x) + shortcut(x)): the blocks a spec builds;
* ``ACTIVATIONS`` / :func:`activation`: relu, leaky_relu, elu, gelu, sigmoid, tanh by name (§4),
  the spec builders of :mod:`cnnlab.design.activations` (the one activation table).

The pooling modules are leaves (no child modules), so a summary sees one layer with one output
shape; they keep ``kernel_size`` / ``stride`` attributes like ``nn.MaxPool2d`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab import geometry
from cnnlab.design.activations import ACTIVATIONS as _TABLE
from cnnlab.design.activations import SPEC_ACTIVATIONS
from cnnlab.design.quote import quote
from cnnlab.errors import SpecError

Flatten = nn.Flatten

__all__ = [
    "ACTIVATIONS",
    "AdaptiveConcatPool2d",
    "ConcatPool2d",
    "Conv2dSame",
    "Flatten",
    "GAPHead",
    "GlobalAvgPool2d",
    "Residual",
    "activation",
]


class ConcatPool2d(nn.Module):
    """Max pooling and average pooling of the same windows, concatenated on channels (§3.3).

    Max keeps the strongest signal (peaks), average the background; both survive.
    x: (B, C, H, W) -> (B, 2C, H', W'), max in channels [0, C), average in [C, 2C); H', W' as
    ``nn.MaxPool2d(kernel_size, stride)``. stride defaults to kernel_size (non-overlapping).

    >>> ConcatPool2d(2)(torch.zeros(8, 64, 28, 28)).shape  # the notes' example
    torch.Size([8, 128, 14, 14])
    """

    def __init__(self, kernel_size: int | tuple[int, int] = 2, stride=None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def forward(self, x: Tensor) -> Tensor:
        peak = F.max_pool2d(x, self.kernel_size, self.stride)  # (B, C, H', W')
        mean = F.avg_pool2d(x, self.kernel_size, self.stride)  # (B, C, H', W')
        return torch.cat([peak, mean], dim=1)  # (B, 2C, H', W')

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class AdaptiveConcatPool2d(nn.Module):
    """Adaptive max and average pooling to `output_size`, concatenated on channels (§3.3).

    x: (B, C, H, W) -> (B, 2C, *output_size), max first. With output_size=1 it is a GAP head
    that also keeps the peak of each map; follow it with ``Flatten`` to get (B, 2C).
    """

    def __init__(self, output_size: int | tuple[int, int] = 1) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        peak = F.adaptive_max_pool2d(x, self.output_size)  # (B, C, h, w)
        mean = F.adaptive_avg_pool2d(x, self.output_size)  # (B, C, h, w)
        return torch.cat([peak, mean], dim=1)  # (B, 2C, h, w)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(nn.Module):
    """Global average pooling head: the mean of each feature map (§3.1).

    x: (B, C, H, W) -> (B, C). No parameters, and any input size works (unlike a flatten head,
    which ties the first dense layer to one H × W).
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1))  # (B, C)


GAPHead = GlobalAvgPool2d


# --- blocks the spec language builds ---------------------------------------------------------


class Conv2dSame(nn.Conv2d):
    """A conv with PyTorch's 'same' padding at a stride > 1, which ``nn.Conv2d`` refuses.

    Pads D(K − 1) zeros per axis, t // 2 before and the rest after (geometry.same_padding),
    then convolves without padding: O = ⌈I / S⌉. Used only for even kernels; odd kernels get
    the symmetric ``padding=(K − 1)/2`` of a plain ``nn.Conv2d``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        (top, bottom), (left, right) = (
            geometry.same_padding(k, d)
            for k, d in zip(self.kernel_size, self.dilation, strict=True)
        )
        self.same_pad = (left, right, top, bottom)  # F.pad order: last axis (W) first

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.same_pad))  # (B, C, H + t_h, W + t_w) -> conv

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, same_pad={self.same_pad}"


class Residual(nn.Module):
    """y = body(x) + shortcut(x), the residual block of ResNet (He et al., 2016).

    The body's layers are children "0", "1", ... so spec layer 5.2 is module ``5.2``. The
    shortcut is the identity (``shortcut=None``), or a projection (1×1 conv [+ batchnorm], or a
    linear layer for flat features) when the body changes the shape: see
    :func:`cnnlab.design.kinds.skip_projection`. The shortcut runs first, so the body's last
    layer is the last child to run. x: (B, C, H, W) -> (B, C', H', W').
    """

    def __init__(self, body: Sequence[nn.Module], shortcut: nn.Module | None = None) -> None:
        super().__init__()
        for i, module in enumerate(body):
            self.add_module(str(i), module)
        self.depth = len(body)
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        for i in range(self.depth):
            x = self[i](x)
        return x + skip

    def __len__(self) -> int:
        return self.depth

    def __getitem__(self, i: int) -> nn.Module:
        """The body's layer i, as ``nn.Sequential`` indexes (``block[0]`` is spec layer 5.0)."""
        if not -self.depth <= i < self.depth:
            raise IndexError(f"residual body has {self.depth} layers, no index {i}")
        return self._modules[str(i % self.depth)]

    def extra_repr(self) -> str:
        return "shortcut=identity" if self.shortcut is None else ""


# --- activation registry (§4) -------------------------------------------------------------
# name -> factory(arg=None) -> nn.Module, read from the one activation table.

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    name: _TABLE[name].make for name in SPEC_ACTIVATIONS
}


def activation(name: str, arg=None) -> nn.Module:
    """A new activation module by registry name, e.g. ``activation("leaky_relu", 0.1)``.

    Unknown names raise SpecError (a ValueError) listing the valid ones.
    """
    try:
        factory = ACTIVATIONS[name]
    except (KeyError, TypeError):
        valid = ", ".join(ACTIVATIONS)
        raise SpecError(f"unknown activation {quote(name)}; valid: {valid}") from None
    return factory(arg)
