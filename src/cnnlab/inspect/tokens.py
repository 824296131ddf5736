"""A vision transformer's tokens as a map of the image, for Grad-CAM.

A ViT-family model (Hugging Face ViT, DeiT, BEiT, DINOv2, MONAI's ViT) has one (B, C, h, w)
map, its patch embedding; every block after it holds tokens (B, N, C): N − h·w leading ones
that are no patch (class, distillation, register tokens), then the h·w patches in row-major
order. pytorch-grad-cam's `reshape_transform` reads a token layer as the map
(B, C, h, w) of its patch tokens; here the grid (h, w) is the model's own: a map of the image
whose call ends before the token layer's, with h·w ≤ N (`token_grid`).

Grad-CAM's default on such a model is the input of the last step that mixes tokens (the last
attention: pytorch-grad-cam's `blocks[-1].norm1`), `mixing_input`. After it each patch token
is computed from itself alone, so where the head reads the class token only, no patch token
after it gets a gradient: Grad-CAM there is a blank map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from cnnlab.design.summary import summary
from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor
from cnnlab.inspect.logits import OutputSelector, check_images, forward
from cnnlab.inspect.order import is_spatial, spatial_layers, tensors_kept
from cnnlab.inspect.preserve import preserved, unwrap


@dataclass(frozen=True)
class Grid:
    """Where the patches lie among a layer's N tokens of `channels` channels: after `prefix`
    leading tokens (class, distillation, registers), h·w of them in row-major order
    (N = prefix + h·w)."""

    prefix: int
    h: int
    w: int
    channels: int

    @property
    def map_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the patch map (`as_map`)."""
        return (self.channels, self.h, self.w)


def is_tokens(t: Tensor, images: int) -> bool:
    """A (B, N, C) output, one row per image: a transformer's tokens."""
    return t.ndim == 3 and len(t) == images


def as_map(tokens: Tensor, grid: Grid) -> Tensor:
    """The patch tokens as a map: drop the leading non-patch tokens and lay the h·w patches
    out on their grid, map[b, c, i, j] = tokens[b, prefix + i·w + j, c].
    (B, N, C) → (B, C, h, w)"""
    patches = tokens[:, grid.prefix :, :]  # (B, h·w, C)
    return patches.transpose(1, 2).reshape(len(tokens), -1, grid.h, grid.w)


@dataclass
class _Call:
    """One call of a submodule in a forward: its label (`call_label`), its place in the order
    the calls start, its first tensor input and its output tensor."""

    label: str
    start: int
    input: Tensor | None = None
    output: Tensor | None = None


@dataclass
class _Trace:
    calls: list[_Call] = field(default_factory=list)
    logits: Tensor | None = None


def _traced(model: nn.Module, x: Tensor, output: OutputSelector, graph: bool) -> _Trace:
    """Every submodule call of one eval-mode forward of x[:1] (with autograd from the input
    on where `graph`), in the order the calls end."""
    trace, open_calls, counts, started = _Trace(), {}, {}, [0]

    def before(name: str) -> Callable:
        def hook(module: nn.Module, args: Any, kwargs: dict) -> None:
            counts[name] = counts.get(name, 0) + 1
            given = (*args, *kwargs.values())  # CLIP's layers take hidden_states= by keyword
            first = next((a for a in given if isinstance(a, Tensor)), None)
            started[0] += 1
            call = _Call(call_label(name, counts[name]), started[0], input=first)
            open_calls.setdefault(name, []).append(call)

        return hook

    def after(name: str) -> Callable:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            call = open_calls[name].pop()
            call.output = output_tensor(out)
            trace.calls.append(call)

        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    x = check_images(x)[:1].detach().clone().requires_grad_(graph)
    with (
        preserved(model),
        tensors_kept(model),
        Hooks()  # pre-hooks that see keyword arguments too: `before` passes positional ones
        ._register(((m, before(n)) for n, m in named), _with_kwargs)
        .after((m, after(n)) for n, m in named),
        torch.set_grad_enabled(graph),
    ):
        trace.logits = forward(model, x, output)
    return trace


def _with_kwargs(module: nn.Module, hook: Callable) -> RemovableHandle:
    return module.register_forward_pre_hook(hook, with_kwargs=True)


def _grid(calls: list[_Call], at: int, maps: set[str]) -> Grid | None:
    """The grid of the tokens calls[at] outputs: of the maps of the image (`maps`, by module
    name) whose calls end before it, the last with the most positions h·w ≤ N (CvT's keys
    and values are read from a map of half its grid's side); None where there is none."""
    _, n, channels = calls[at].output.shape
    best = None
    for call in calls[:at]:
        shape = tuple(call.output.shape) if call.output is not None else ()
        if call.label.split(" #")[0] in maps and is_spatial(shape) and shape[2] * shape[3] <= n:
            if best is None or shape[2] * shape[3] >= best[0] * best[1]:
                best = shape[2:]
    return Grid(n - best[0] * best[1], *best, channels) if best is not None else None


def token_grid(model: nn.Module, x: Tensor, layer: str, output: OutputSelector = None) -> Grid:
    """The grid of `layer`'s (B, N, C) tokens (a call's label, `blocks.3 #2` its second call),
    from one forward of x[:1] and the shape probes of `spatial_layers`. ExplainError naming the
    layer and its shape where no map of the image before it has h·w ≤ N (a Swin's merged
    tokens, tokens of no image grid)."""
    model = unwrap(model)
    trace = _traced(model, x, output, graph=False)
    at = next((i for i, c in enumerate(trace.calls) if c.label == layer), None)
    out = trace.calls[at].output if at is not None else None
    if out is None or out.ndim != 3:
        shape = tuple(out.shape) if out is not None else None
        raise ExplainError(f"layer {layer!r} gives {shape}, not tokens (B, N, C)")
    grid = _grid(trace.calls, at, set(spatial_layers(model, x, output)))
    if grid is None:
        raise ExplainError(
            f"layer {layer!r} gives tokens (B, {', '.join(map(str, out.shape[1:]))}) whose "
            "patch grid is unknown: no map of the image (B, C, h, w) with h·w ≤ N comes "
            "before it; choose a map layer or a token layer after the patch embedding"
        )
    return grid


def class_mix(classes: int, like: Tensor) -> Tensor:
    """r, fixed random weights of the classes (seed 0): ∂(r·logits)/∂A is zero only where
    every class's gradient is (a plain sum of the logits is constant for centred logits)."""
    return torch.randn(classes, generator=torch.Generator().manual_seed(0)).to(like)


def _tokens(t: Tensor | None, n: int | None = None) -> bool:
    """A (1, N, C) tensor autograd tracks (N = n where given)."""
    return t is not None and t.ndim == 3 and t.requires_grad and (n is None or t.shape[1] == n)


def _mixes(call: _Call) -> bool:
    """Whether the call's last output token is computed from other input tokens: the gradient
    of r·out[0, -1] at input tokens 0..N-2 is not all zero. A per-token step (a Linear, a
    LayerNorm, an MLP) gives exact zeros there; attention does not."""
    out, inp = call.output[0, -1], call.input
    try:
        (g,) = torch.autograd.grad(
            (out * class_mix(len(out), out)).sum(), [inp], retain_graph=True, allow_unused=True
        )
    except RuntimeError:  # an in-place op on a saved tensor: nothing is told
        return False
    return g is not None and bool(g[0, :-1].any())


def mixing_input(model: nn.Module, x: Tensor, output: OutputSelector = None) -> str | None:
    """The label of the layer whose output is the input of the last call (by start) that mixes
    tokens (`_mixes`) of a token grid (`token_grid`): a ViT's last attention's input, its last
    block's first norm; whose patch tokens get a gradient from r·logits. None: the model has
    no such step (a CNN), or its input is no module's output, or gets none. One forward of
    one image, and a backward per call with tokens in and out, from the last call on."""
    found = _mixing_input(unwrap(model), x, output)
    return found[0] if found else None


def deeper_layer(model: nn.Module, x: Tensor, map_layer: str, output: OutputSelector = None):
    """Grad-CAM's default layer, of `map_layer` (the last map the logits get a gradient
    from: `reached.feeding_maps`) and `mixing_input`: the one whose call ends last. A ViT's
    only map is its patch embedding, before any block; a CNN has no tokens (or none after its
    last map: a head that attends over its map's positions reads the map itself)."""
    found = _mixing_input(unwrap(model), x, output)
    if found is None:
        return map_layer
    label, calls = found
    ends = [c.label for c in calls]
    if map_layer in ends and ends.index(map_layer) > ends.index(label):
        return map_layer
    return label


def _has_tokens(model: nn.Module, size: tuple[int, ...]) -> bool:
    """Whether a module of the model gives tokens (N, C) per image, in its summary's rows (a
    meta trace: milliseconds, where the forward with autograd `_traced` runs costs a CNN a
    quarter of its default layer's search). True where the summary cannot tell."""
    try:
        rows = summary(model, size).rows
    except Exception:  # noqa: BLE001 - any model the summary cannot trace: the real trace tells
        return True
    return any(len(row.output_shape) == 2 for row in rows)


def _mixing_input(
    model: nn.Module, x: Tensor, output: OutputSelector
) -> tuple[str, list[_Call]] | None:
    """(`mixing_input`, the calls of the forward in the order they end), or None. A forward
    that fails with autograd on tells nothing (`reached.zero_gradient` says so for it)."""
    if not _has_tokens(model, tuple(x.shape[1:])):
        return None
    try:
        trace = _traced(model, x, output, graph=True)
    except (ExplainError, RuntimeError):
        return None
    calls = trace.calls
    made = {id(c.output): i for i, c in enumerate(calls) if c.output is not None}
    mixing = [
        c
        for c in calls
        if _tokens(c.output) and _tokens(c.input, c.output.shape[1]) and id(c.input) in made
    ]
    maps = set(spatial_layers(model, x, output)) if mixing else set()  # a CNN: no probes
    for call in sorted(mixing, key=lambda c: c.start, reverse=True):
        if not _mixes(call):
            continue
        at = made[id(call.input)]
        grid = _grid(calls, at, maps)
        if grid is None:  # the last mixing is of tokens on no known grid (a Swin's merged ones)
            return None
        if _patches_fed(trace, calls[at].output, grid):
            return calls[at].label, calls
    return None


def _patches_fed(trace: _Trace, tokens: Tensor, grid: Grid) -> bool:
    """Whether r·logits has a non-zero gradient at the patch tokens of `tokens`."""
    logits = trace.logits
    try:
        (g,) = torch.autograd.grad(
            (logits * class_mix(logits.shape[1], logits)).sum(),
            [tokens],
            retain_graph=True,
            allow_unused=True,
        )
    except RuntimeError:
        return False
    return g is not None and bool(g[:, grid.prefix :].any())


def cam_layers(
    model: nn.Module, x: Tensor, maps: dict[str, tuple], layer: str | None, output=None
) -> dict[str, tuple]:
    """The layers Grad-CAM reads, label -> (C, H, W): the maps, and `layer` (Grad-CAM's
    default) where it is tokens, with its patch map's shape (`token_grid`)."""
    if layer is None or layer in maps:
        return dict(maps)
    return {**maps, layer: token_grid(model, x, layer, output).map_shape}
