"""A vision transformer's tokens as a map of the image, for Grad-CAM.

A ViT-family model (Hugging Face ViT, DeiT, BEiT, DINOv2, MONAI's ViT) has one (B, C, h, w)
map, its patch embedding; every block after it holds tokens (B, N, C): N − h·w leading ones
that are no patch (class, distillation, register tokens), then the h·w patches in row-major
order. pytorch-grad-cam's `reshape_transform` reads a token layer as the map
(B, C, h, w) of its patch tokens; here the grid (h, w) is the model's own: a map of the image
whose call ends before the token layer's, with h·w ≤ N (`token_grid`). A hierarchical one (Swin)
merges 2×2 tokens per stage: its tokens lie in row-major order on its patch grid downsampled
2^k per side, no class token (`merged_grid`).

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

from cnnlab.design.summary import summary
from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor
from cnnlab.inspect.logits import OutputSelector, check_images, forward
from cnnlab.inspect.maps import is_spatial, spatial_layers, tensors_kept
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
            call.output = output_tensor(out, module)
            trace.calls.append(call)

        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    x = check_images(x)[:1].detach().clone().requires_grad_(graph)
    with (
        preserved(model),
        tensors_kept(model),
        Hooks()
        .before(((m, before(n)) for n, m in named), with_kwargs=True)
        .after((m, after(n)) for n, m in named),
        torch.set_grad_enabled(graph),
    ):
        trace.logits = forward(model, x, output)
    return trace


def merged_grid(patches: tuple[int, int], n: int) -> tuple[int, int] | None:
    """The grid (h, w) of n tokens merged from a patch map (h0, w0) by s×s patches, as a
    Swin's patch merging merges 2×2 per stage: h0 = s·h, w0 = s·w, h·w = n, for an integer
    s ≥ 1; None where no s fits (s = √(h0·w0 / n)), or n = 1 (no map: H·W > 1, as a map's)."""
    h0, w0 = patches
    s = round((h0 * w0 / n) ** 0.5) if n > 1 else 0
    if s < 1 or h0 % s or w0 % s or (h0 // s) * (w0 // s) != n:
        return None
    return h0 // s, w0 // s


def _grid(calls: list[_Call], at: int, maps: set[str]) -> Grid | None:
    """The grid of the tokens calls[at] outputs, from the maps of the image (`maps`, by module
    name) whose calls end before it: the last with the most positions h·w ≤ N (the N − h·w
    leading tokens no patch; CvT's keys and values are read from a map of half its grid's
    side). Where no map has h·w ≤ N, the last map whose grid merged s×s has N positions
    (`merged_grid`), no leading token, where a merge onto it is seen (`_merged_onto`): a
    Swin's tokens after patch merging, in row-major order on its patch grid downsampled 2^k
    per side. None where neither fits."""
    _, n, channels = calls[at].output.shape
    best, merged = None, None
    for call in calls[:at]:
        shape = tuple(call.output.shape) if call.output is not None else ()
        if call.label.split(" #")[0] not in maps or not is_spatial(shape):
            continue
        if shape[2] * shape[3] <= n:
            if best is None or shape[2] * shape[3] >= best[0] * best[1]:
                best = shape[2:]
        merged = merged_grid(shape[2:], n) or merged
    if best is not None:
        return Grid(n - best[0] * best[1], *best, channels)
    if merged is None or not _merged_onto(calls, at, *merged):
        return None
    return Grid(0, *merged, channels)


def _merged_onto(calls: list[_Call], at: int, h: int, w: int) -> bool:
    """Whether the h·w tokens calls[at] outputs were merged onto the grid (h, w): of the calls
    ending by it that turn more tokens of an image into h·w, the one that starts last (a
    Swin's patch merging, LeViT's subsampling) is `_local`. Perceiver's latents, each
    computed from every position of the image, lie on no grid."""
    merges = [
        c
        for c in calls[: at + 1]
        if _tokens(c.output, h * w) and _tokens(c.input) and len(c.input) == len(c.output) == 1
        if c.input.shape[1] > h * w
    ]
    return bool(merges) and _local(max(merges, key=lambda c: c.start), h, w)


def _local(call: _Call, h: int, w: int) -> bool:
    """Whether the call's out token (i, j) of the grid (h, w) is computed from in tokens of its
    s×s block of the grid (s·h, s·w) alone, each from some (both row-major; s² = N_in / h·w,
    s ≥ 2 an integer). Four backward passes, one per parity of (i, j): the gradient of
    r·out at those tokens reaches their blocks and no other."""
    n_in = call.input.shape[1]
    s = round((n_in / (h * w)) ** 0.5)
    if s < 2 or s * s * h * w != n_in:
        return False
    out = call.output[0].reshape(h, w, -1)
    for a, b in ((0, 0), (0, 1), (1, 0), (1, 1)):
        picked = out[a::2, b::2]
        if not picked.numel():
            continue
        try:
            (g,) = torch.autograd.grad(
                (picked * class_mix(picked.shape[-1], picked)).sum(),
                [call.input],
                retain_graph=True,
                allow_unused=True,
            )
        except RuntimeError:  # an in-place op on a saved tensor: nothing is told
            return False
        if g is None:
            return False
        reached = g[0].ne(0).any(-1).reshape(h, s, w, s).any(3).any(1)  # (h, w) blocks
        wanted = torch.zeros(h, w, dtype=torch.bool)
        wanted[a::2, b::2] = True
        if not torch.equal(reached.cpu(), wanted):
            return False
    return True


def token_grid(model: nn.Module, x: Tensor, layer: str, output: OutputSelector = None) -> Grid:
    """The grid of `layer`'s (B, N, C) tokens (a call's label, `blocks.3 #2` its second call),
    from one forward of x[:1] with autograd and the shape probes of `spatial_layers`.
    ExplainError naming the layer and its shape where no grid fits (`_grid`): tokens of no
    image grid."""
    model = unwrap(model)
    try:
        trace = _traced(model, x, output, graph=True)  # `_local` reads autograd
    except RuntimeError:  # a forward that fails with autograd on: its maps' grids alone
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
            "patch grid is unknown: no map of the image (B, C, h, w) before it has h·w ≤ N, "
            "nor merged s×s to N positions; choose a map layer or a token layer of patches"
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
    block's first norm; a Swin's, before its window partition (`_source`); whose patch tokens
    get a gradient from r·logits. None: the model has no such step (a CNN), or its input is no
    module's output, or gets none. One forward of one image, and a backward per call with
    tokens in and out, from the last call on."""
    found, _ = _mixing_inputs(unwrap(model), x, output)
    return next(iter(found), None)


def token_layers(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, Grid]:
    """`mixing_input` of every call that mixes tokens, in forward order, with its grid: each
    block's attention's input whose tokens lie on a grid and whose patch tokens get a gradient
    (the layers Grad-CAM reads on a transformer, as every map on a CNN); {} for a CNN."""
    found, _ = _mixing_inputs(unwrap(model), x, output, every=True)
    return dict(reversed(found.items()))


def deeper_layer(model: nn.Module, x: Tensor, map_layer: str, output: OutputSelector = None):
    """Grad-CAM's default layer, of `map_layer` (the last map the logits get a gradient
    from: `reached.feeding_maps`) and `mixing_input`: the one whose call ends last. A ViT's
    only map is its patch embedding, before any block; a CNN has no tokens (or none after its
    last map: a head that attends over its map's positions reads the map itself)."""
    found, calls = _mixing_inputs(unwrap(model), x, output)
    if not found:
        return map_layer
    (label,) = found
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


# autograd nodes that only move, copy, pad or crop values: a Swin's window partition of its
# norm's output (view, pad, roll, permute, contiguous) before its attention reads it
REARRANGING = frozenset(
    f"{op}Backward0"
    for op in (
        "View", "UnsafeView", "ReshapeAlias", "Permute", "Transpose", "T", "Roll",
        "ConstantPadNd", "Clone", "Slice", "Squeeze", "Unsqueeze",
    )
) | {"SqueezeBackward1", "SqueezeBackward2"}  # fmt: skip


def _source(t: Tensor | None, made: dict[int, int], by_node: dict[Any, int]) -> int | None:
    """The index of the call whose output `t` is, or is a rearrangement of (`REARRANGING`,
    back through autograd's graph); None for none."""
    if t is None:
        return None
    if id(t) in made:
        return made[id(t)]
    node = t.grad_fn
    while node is not None and node not in by_node and type(node).__name__ in REARRANGING:
        inputs = [n for n, _ in node.next_functions if n is not None]
        node = inputs[0] if len(inputs) == 1 else None
    return by_node.get(node) if node is not None else None


def _mixing_inputs(
    model: nn.Module, x: Tensor, output: OutputSelector, every: bool = False
) -> tuple[dict[str, Grid], list[_Call]]:
    """(the labels of `mixing_input` with their grids, the last first: only the last unless
    `every`; the calls of the forward in the order they end). A forward that fails with
    autograd on tells nothing (`reached.zero_gradient` says so for it). The tokens chosen are
    a module's own output (1, N, C), on the grid `_grid` reads (row-major), never a window
    partition of them."""
    if not _has_tokens(model, tuple(x.shape[1:])):
        return {}, []
    try:
        trace = _traced(model, x, output, graph=True)
    except (ExplainError, RuntimeError):
        return {}, []
    calls = trace.calls
    made = {id(c.output): i for i, c in enumerate(calls) if c.output is not None}
    by_node = {c.output.grad_fn: i for i, c in enumerate(calls) if _tokens(c.output)}
    mixing = []
    for c in calls:
        if _tokens(c.output) and _tokens(c.input, c.output.shape[1]):
            at = _source(c.input, made, by_node)
            if at is not None and _tokens(calls[at].output) and len(calls[at].output) == 1:
                mixing.append((c, at))
    maps = set(spatial_layers(model, x, output)) if mixing else set()  # a CNN: no probes
    found: dict[str, Grid] = {}
    mixed: list[_Call] = []  # the calls that mix, the last first
    for call, at in sorted(mixing, key=lambda m: m[0].start, reverse=True):
        if calls[at].label in found or any(_within(m, call, calls) for m in mixed):
            continue  # a block whose attention mixes is no step of its own
        if not _mixes(call):
            continue
        mixed.append(call)
        grid = _grid(calls, at, maps)
        if grid is None:  # the last mixing is of tokens on no known grid: no default
            if every:
                continue
            break
        if _patches_fed(trace, calls[at].output, grid):
            found[calls[at].label] = grid
            if not every:
                break
    return found, calls


def _within(inner: _Call, outer: _Call, calls: list[_Call]) -> bool:
    """Whether `inner` runs inside `outer`: it starts after it and ends before it (`calls`
    in the order they end)."""
    return inner.start > outer.start and calls.index(inner) < calls.index(outer)


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
    """The layers Grad-CAM reads, label -> (C, H, W): the maps, then every block's token
    layer (`token_layers`) and `layer` (Grad-CAM's default) where it is tokens, each with its
    patch map's shape (`token_grid`)."""
    grids = token_layers(model, x, output) if maps else {}
    if layer is not None and layer not in maps and layer not in grids:
        grids[layer] = token_grid(model, x, layer, output)
    return {**maps, **{label: grid.map_shape for label, grid in grids.items()}}
