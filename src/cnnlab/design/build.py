"""Spec -> ``nn.Module``: one ``nn.Sequential`` whose child ``str(i)`` is spec layer i.

The analytic shapes of :mod:`cnnlab.design.spec` decide everything that depends on the input: a
linear layer's in_features, BatchNorm1d or 2d, and a residual block's projection shortcut.
Weights keep PyTorch's default initialisation. The Spec rides along as ``model.spec`` so a
run can save it next to the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab import geometry
from cnnlab.design import layers
from cnnlab.design.spec import Layer, Shape, Spec, layer_shapes, load_spec, skip_projection

__all__ = ["Conv2dSame", "Residual", "build"]


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
    :func:`cnnlab.design.spec.skip_projection`. The shortcut runs first, so the body's last layer is
    the last child to run. x: (B, C, H, W) -> (B, C', H', W').
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


def _hw(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def _conv(a: Mapping, shape: Shape) -> nn.Module:
    common = dict(
        in_channels=shape[0],
        out_channels=a["filters"],
        kernel_size=a["kernel"],
        stride=a["stride"],
        dilation=a["dilation"],
        groups=a["groups"],
        bias=a["bias"],
    )
    if a["padding"] != "same":
        return nn.Conv2d(padding=a["padding"], **common)
    pads = [
        geometry.same_padding(k, d)
        for k, d in zip(_hw(a["kernel"]), _hw(a["dilation"]), strict=True)
    ]
    if all(before == after for before, after in pads):  # odd kernel: symmetric, as the notes
        return nn.Conv2d(padding=tuple(before for before, _ in pads), **common)
    if a["stride"] == 1:
        return nn.Conv2d(padding="same", **common)  # even kernel: the odd pixel goes after
    return Conv2dSame(**common)


def _shortcut(body: Sequence[Layer], shape: Shape, out: Shape, where: str) -> nn.Module | None:
    stride = skip_projection(shape, out, where)
    if stride is None:
        return None
    norm = any(layer.kind == "batchnorm" for layer in body)
    if len(shape) == 1:
        proj = nn.Linear(shape[0], out[0], bias=not norm)
        return nn.Sequential(proj, nn.BatchNorm1d(out[0])) if norm else proj
    proj = nn.Conv2d(shape[0], out[0], 1, stride=stride, bias=not norm)  # bias: BN has one
    return nn.Sequential(proj, nn.BatchNorm2d(out[0])) if norm else proj


def _residual(a: Mapping, shape: Shape, out: Shape, index: str) -> nn.Module:
    body = _modules(a["layers"], shape, prefix=f"{index}.")
    return Residual(body, _shortcut(a["layers"], shape, out, f"layer {index} (residual)"))


def _batchnorm(a: Mapping, shape: Shape) -> nn.Module:
    return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])


def _activation(kind: str) -> Callable[[Mapping, Shape], nn.Module]:
    """relu, leaky_relu(slope), elu(alpha), gelu(approximate), ...: cnnlab.layers' registry."""
    return lambda a, shape: layers.activation(kind, next(iter(a.values()), None))


_MAKE: dict[str, Callable[[Mapping, Shape], nn.Module]] = {
    "conv": _conv,
    "maxpool": lambda a, shape: nn.MaxPool2d(a["kernel"], a["stride"], a["padding"]),
    "avgpool": lambda a, shape: nn.AvgPool2d(a["kernel"], a["stride"], a["padding"]),
    "concatpool": lambda a, shape: layers.ConcatPool2d(a["kernel"], a["stride"]),
    "adaptiveconcatpool": lambda a, shape: layers.AdaptiveConcatPool2d(a["output_size"]),
    "gap": lambda a, shape: layers.GlobalAvgPool2d(),
    "flatten": lambda a, shape: nn.Flatten(),
    "linear": lambda a, shape: nn.Linear(shape[0], a["features"], bias=a["bias"]),
    "dropout": lambda a, shape: nn.Dropout(a["p"]),
    "batchnorm": _batchnorm,
    **{kind: _activation(kind) for kind in layers.ACTIVATIONS},
}


def _modules(spec_layers: Sequence[Layer], shape: Shape, prefix: str = "") -> list[nn.Module]:
    """One module per layer; `shape` is the input's, `prefix` names a residual's body."""
    out = []
    for i, (layer, after) in enumerate(
        zip(spec_layers, layer_shapes(spec_layers, shape, prefix), strict=True)
    ):
        if layer.kind == "residual":
            out.append(_residual(layer.args, shape, after, f"{prefix}{i}"))
        else:
            out.append(_MAKE[layer.kind](layer.args, shape))
        shape = after
    return out


def build(spec_or_source: Spec | Mapping | str | Path) -> nn.Sequential:
    """The model a spec describes: ``nn.Sequential`` with child ``str(i)`` = spec layer i.

    Accepts whatever :func:`load_spec` does (Spec, dict, preset name, path, text).
    Input (B, *spec.input) -> logits (B, classes) for a classifier spec. The validated Spec is
    attached as ``model.spec``.

    >>> sum(p.numel() for p in build("fmnist-tf").parameters())
    3274634
    """
    spec = load_spec(spec_or_source)
    model = nn.Sequential(*_modules(spec.layers, spec.input))
    model.spec = spec
    return model
