"""Effective receptive field (notes §3.2; Luo et al. 2016): how much each input pixel
actually moves the centre unit of a layer, against the theoretical receptive field.

gradient[i, j] = mean over n random inputs and the input channels of
                 |∂ Σ_c A[c, h/2, w/2] / ∂ x[i, j]|
measured side = the smallest square, centred on the gradient's centre of mass, that holds
`mass` (95 %) of the summed gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.copying import plain_name
from cnnlab.errors import CnnlabError, ExplainError
from cnnlab.inspect import (
    Capture,
    Hooks,
    OutputSelector,
    channel_dim,
    check_values,
    device_of,
    dtype_of,
    forward,
    gradients,
    needs_gradients,
    preserved,
    require_graph,
    resolve_layer,
)
from cnnlab.inspect.names import split_call
from cnnlab.inspect.preserve import unwrap_layer


@dataclass(frozen=True)
class ERF:
    """gradient: (H, W) mean |∂ centre unit / ∂ input|; measured: side (pixels) of the centred
    square holding `mass` of it; theoretical: the receptive field side, from
    `cnnlab.summary` when it knows the layer, else the side of the gradient's non-zero
    support (clipped to the input), as `theoretical_source` says."""

    layer: str
    gradient: Tensor
    measured: int
    theoretical: int | None
    theoretical_source: str
    mass: float

    def __repr__(self) -> str:  # the (H, W) gradient would bury the two numbers that matter
        h, w = self.gradient.shape
        return (
            f"ERF(layer={self.layer!r}, measured={self.measured}, "
            f"theoretical={self.theoretical} ({self.theoretical_source}), "
            f"mass={self.mass}, gradient=<{h}×{w}>)"
        )


def centred_side(grad: Tensor, mass: float = 0.95) -> int:
    """Side of the smallest square, centred on grad's centre of mass, holding `mass` of it."""
    h, w = grad.shape
    total = grad.sum()
    if total <= 0:
        return 0
    ys, xs = torch.arange(h, dtype=grad.dtype), torch.arange(w, dtype=grad.dtype)
    cy = float((grad.sum(1) * ys).sum() / total)
    cx = float((grad.sum(0) * xs).sum() / total)
    for side in range(1, max(h, w) + 1):
        # of the squares whose centre lies within a pixel of the centre of mass, the best:
        # one rounded position alone cut a side of the field off, and an even field of 14
        # px measured 15, wider than the theoretical one
        tops = _starts(cy - (side - 1) / 2, h - side)
        lefts = _starts(cx - (side - 1) / 2, w - side)
        best = max(grad[t : t + side, l : l + side].sum() for t in tops for l in lefts)
        if best >= mass * total:
            return side
    return max(h, w)


def _starts(start: float, last: int) -> set[int]:
    """The whole starts next to `start`, within 0..last."""
    return {min(max(s, 0), max(last, 0)) for s in (math.floor(start), math.ceil(start))}


def support_side(grad: Tensor) -> int:
    """Side of the bounding box of the non-zero gradient (the larger of height and width)."""
    rows = grad.sum(1).nonzero()
    cols = grad.sum(0).nonzero()
    if rows.numel() == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def summary_rf(
    model: nn.Module, layer: str, input_size: tuple[int, int, int], inside: list[tuple[str, int]]
) -> int | None:
    """The side of `layer`'s receptive field from `cnnlab.summary` (§3.2); None where summary
    cannot trace the model or follow the field to that layer.

    A module called twice has two rows, `relu` and `relu #2`, as `layer` names its calls. A
    container (a block, a stage) has no row of its own: the output of its call is the last
    call with a row among `inside`, the calls (module name, its call number) that ended
    within that call of the container, in the order they ended (`Inside`).
    """
    try:
        rows = summary(model, input_size=input_size).rows
    except CnnlabError:  # summary cannot run the model: the caller measures the support
        return None
    name, call = split_call(layer, dict(model.named_modules()))
    fields = {(row.name, row.call): row.receptive_field for row in rows}
    for key in ((plain_name(name), call), *reversed(inside)):
        if key in fields:
            return fields[key]
    return None


class Inside:
    """`with Inside(model, name) as inside:` records, during a forward, the calls (module
    name, its call number, counted from the start of the forward as the summary counts its
    rows) of the modules inside container `name` that end within each of its calls;
    `inside.of(call)` lists them for its call number `call`, in the order they ended. The
    container's own pre- and post-hooks mark where each call begins and ends: the order of
    its modules' calls alone has no boundary between two calls back to back, nor between a
    first module run twice in one call and the next call."""

    def __init__(self, model: nn.Module, name: str):
        prefix = name + "." if name else ""
        # named as the summary names its rows: a torch.compile'd block's `block._orig_mod.0`
        # is `block.0`, and the wrapper's inner module is the block itself, no module inside
        self.modules = {
            plain_name(n): m
            for n, m in model.named_modules()
            if n.startswith(prefix) and n and plain_name(n) != plain_name(name)
        }
        self.container = resolve_layer(model, name)
        self.counts: dict[str, int] = {}
        self.ended: list[tuple[str, int]] = []
        self.open: list[int] = []  # where each running call of the container began in `ended`
        self.calls: list[list[tuple[str, int]]] = []
        self._hooks = Hooks()

    def _begin(self, module: nn.Module, args: tuple) -> None:
        self.open.append(len(self.ended))

    def _end(self, module: nn.Module, args: tuple, out: object) -> None:
        self.calls.append(self.ended[self.open.pop() :] if self.open else [])

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: object) -> None:
            self.counts[name] = self.counts.get(name, 0) + 1
            self.ended.append((name, self.counts[name]))

        return hook

    def __enter__(self) -> Inside:
        self._hooks.before([(self.container, self._begin)])
        self._hooks.after((m, self._hook(n)) for n, m in self.modules.items())
        self._hooks.after([(self.container, self._end)])
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def of(self, call: int) -> list[tuple[str, int]]:
        """The calls that ended within the container's call `call` (1: its first); [] where
        it made fewer calls."""
        return self.calls[call - 1] if len(self.calls) >= call else []


def effective_receptive_field(
    model: nn.Module,
    layer: str,
    input_size: tuple[int, int, int],
    n: int = 32,
    *,
    mass: float = 0.95,
    seed: int = 0,
    output: OutputSelector = None,
) -> ERF:
    """ERF of the centre unit of `layer` on n standard-normal inputs of shape input_size
    (C, H, W): one forward and one backward for the n inputs together (eval mode; images
    are independent). Returns an ERF with gradient (H, W). layer: a module's name (its first
    call in the forward) or a call's label, `relu #2`, as the summary labels calls."""
    # `features.3` of a wrapped model; a meta model's images are made on its device: refused
    model, layer = unwrap_layer(model, layer)
    check_values(model)
    resolve_layer(model, layer)
    needs_gradients("effective_receptive_field")
    if n < 1:
        raise ExplainError(f"effective_receptive_field needs n ≥ 1 inputs, got {n}")
    if not 0 < mass <= 1:
        raise ExplainError(f"mass is the share of gradient to enclose, in (0, 1]; got {mass}")
    size = tuple(input_size) if isinstance(input_size, tuple | list) else ()
    if len(size) != 3 or not all(isinstance(v, int) and v >= 1 for v in size):
        raise ExplainError(
            f"input_size must be three positive integers (C, H, W), got {input_size!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *input_size), generator=gen)  # in the model's dtype, on its device:
    x = x.to(device_of(model), dtype_of(model)).requires_grad_(True)  # the caller gives none
    with preserved(model):
        dim = channel_dim(model, x.detach(), layer, output)  # a ConvNeXt's (B, H, W, C): 3
    base, call = split_call(layer, dict(model.named_modules()))
    with (
        preserved(model),
        Capture(model, [layer], calls=True) as cap,
        Inside(model, base) as inside,
        torch.enable_grad(),
    ):
        forward(model, x, output, logits=False)
        ended = inside.of(call)  # before the backward, which may run a checkpoint's calls again
        out = cap.tensor(layer)
        if out.dim() != 4:  # named by the shape the layer gives, not the moved one
            raise ExplainError(
                f"layer {layer!r} has output shape {tuple(out.shape)}; the effective receptive "
                "field needs a spatial (B, C, H, W) layer"
            )
        require_graph(out, layer, "the effective receptive field")
        acts = out.movedim(dim, 1)
        h, w = acts.shape[2:]
        (grad,) = gradients(acts[:, :, h // 2, w // 2].sum(), [x])  # reentrant checkpoints
    # (H, W) on the CPU, at least float32: centred_side's sums of it, arange's on the CPU
    gradient = grad.to(torch.promote_types(grad.dtype, torch.float32)).abs().mean((0, 1)).cpu()
    theoretical = summary_rf(model, layer, tuple(input_size), ended)
    source = "cnnlab.summary"
    if theoretical is None:
        theoretical, source = support_side(gradient), "gradient support"
    return ERF(layer, gradient, centred_side(gradient, mass), theoretical, source, mass)
