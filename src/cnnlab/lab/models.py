"""The lab's small architectures, as cnnlab specs (data, built by cnnlab.build/the trainer).

Small on purpose: a quick lab trains dozens of them on 2 CPU cores in minutes.
"""

from __future__ import annotations

from collections.abc import Sequence


def spec(name: str, layers: list, input_shape: Sequence[int] = (1, 28, 28)) -> dict:
    """A spec dict: `name`, `input` (C, H, W), `layers`."""
    return {"name": name, "input": list(input_shape), "layers": layers}


def conv(filters: int, kernel: int = 3, stride: int = 1, padding="same", bias: bool = True) -> dict:
    args = {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding}
    return {"conv": {**args, "bias": bias}}


def mlp(hidden: Sequence[int] = (256,), classes: int = 10, act: str = "relu") -> list:
    """flatten, then linear + activation per hidden width, then linear(classes)."""
    layers: list = ["flatten"]
    for width in hidden:
        layers += [{"linear": width}, act]
    return [*layers, {"linear": classes}]


def conv_stack(
    widths: Sequence[int], down: str = "maxpool", act: str = "relu", bn: bool = True
) -> list:
    """One 3×3 'same' conv (+ batch norm) + activation per width, each followed by a 2×
    downsampling: `down` = "maxpool" | "avgpool" | "concatpool" | "stride" (the conv itself
    has stride 2). Batch norm: 75 % against 64 % test accuracy for (16, 32, 32) + GAP after
    3 epochs on 2,000 Fashion-MNIST images, at about 1.4x the time."""
    layers: list = []
    for width in widths:
        stride, padding = (2, 1) if down == "stride" else (1, "same")
        layers += [conv(width, stride=stride, padding=padding, bias=not bn)]
        layers += ["batchnorm", act] if bn else [act]
        if down != "stride":
            layers.append({down: 2})
    return layers


def head(kind: str, classes: int = 10) -> list:
    """ "gap" (global average pooling) or "flatten", then linear(classes)."""
    return [kind, {"linear": classes}]
