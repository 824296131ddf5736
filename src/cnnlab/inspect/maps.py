"""Which layers' outputs are feature maps of the image: 4-D outputs whose dim 0 is the images',
not made by a padding op nor attention weights, and whose last two axes follow the image's
size (`image_maps`); those with more than one position (`spatial_layers`, and `map_dims` for
the maps held channels last, as a ConvNeXt block's between its permutes, by module or by
call: `call_map_shape`); the maps a graph feeds (`graph_fed_maps`); one image's rows of a
batched output (`per_image`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor
from cnnlab.inspect.layouts import FollowLayouts
from cnnlab.inspect.logits import OutputSelector, check_images, forward, select_logits
from cnnlab.inspect.order import CallOrder
from cnnlab.inspect.preserve import is_compiled_inner, unwrap


def is_spatial(shape: tuple) -> bool:
    """A 4-D (B, C, H, W) output with more than one position."""
    return len(shape) == 4 and shape[2] * shape[3] > 1


def as_map_shape(shape: tuple, dim: int) -> tuple:
    """`shape` as `t.movedim(dim, 1)` gives it (dim >= 1): (B, H, W, C), 3 → (B, C, H, W)."""
    return (shape[0], shape[dim], *(size for at, size in enumerate(shape) if at not in (0, dim)))


def spatial_layers(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """Names of the layers whose output is a feature map of the image (`image_maps`) with
    H·W > 1, in forward order. A torch.compile'd child is named once, as the model names it
    (`3`, not also `3._orig_mod`). `map_dims` adds the maps held channels last."""
    spatial, turned, _ = _spatial(model, x, output)
    return [name for name, _ in spatial if name not in turned]


def call_map_shape(label: str, shape: tuple, dims: dict[str, int]) -> tuple:
    """Call `label`'s output shape as its map's: a 4-D one moved by dims[label], the dim that
    call held its channels on (`map_dims(calls=True)`), (B, H, W, C), 3 → (B, C, H, W); any
    other as it is. By call, not module: one GELU module applied to a conv's (B, C, H, W)
    and after a Linear to (B, H, W, C) holds them on 1, then on 3."""
    dim = dims.get(label, 1)
    return as_map_shape(shape, dim) if dim != 1 and len(shape) == 4 else shape


def map_dims(
    model: nn.Module,
    x: Tensor,
    output: OutputSelector = None,
    every: bool = False,
    calls: bool = False,
) -> dict[str, int]:
    """{name: the dim of its output that holds the channels} of the maps of the image with
    H·W > 1, in forward order: `spatial_layers` (dim 1) and the 4-D outputs holding them
    elsewhere (3: a ConvNeXt block's (B, H, W, C) between its permutes) that pass
    `image_maps`' (a)-(c) as `t.movedim(dim, 1)`, the map Grad-CAM and `feature_maps` read.
    every=True: `image_maps`' too (1×1, a compiled child's inner module; one pair of forwards).
    calls=True: {label: dim} of each call of those layers with a 4-D output, labelled as the
    summary labels calls (`call_label`: `act`, `act #2`), each with its own call's dim (a
    module is judged a map by its last call; a module shared by two layouts holds its
    channels on 1 in one call and on 3 in another), in the order the calls finish."""
    found, turned, pair = (_image_maps if every else _spatial)(model, x, output)
    if calls:
        names = dict(found)
        return {label: dim for label, (name, dim) in pair.call_dims.items() if name in names}
    return {name: turned.get(name, 1) for name in dict(found)}


def image_maps(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, tuple]:
    """{name: (C, H, W) of its last call} of the layers whose output is a feature map of the
    image, 1×1 included, in the order of their last calls. A 4-D output is one only if

    (a) its dim 0 is the images': 2 in a forward of two images (one image hid a Swin's last
        stage, one window per image: (windows·B, heads, N, N));
    (b) no padding op returned it (`Layouts.padded`: nn.ZeroPad2d and the other torch pads,
        an EfficientNet's 'same' padding module; Grad-CAM upsampled the border with the map,
        whose evidence landed shrunk to the image's centre). Found by the op, not the class:
        a port's own padding module is caught as torch's are; nor is it attention weights
        (`Layouts.attention`: a ViT's or CvT's (B, heads, N, N) softmax, whose N×N grows
        with the image as H×W does, and which a fixed-size ViT never shows at other sizes);
    (c) its last two axes follow the image's size: in a forward of images twice as high and
        wide both differ, or stay 1×1 (a global pool); a window attention's N×N and
        MobileViT-v2's unfolded patches (B, C, P, N) keep P. A layer the larger images do
        not reach (a Flatten-Linear head refuses them; a model of fixed size) is not judged
        by it, nor is any layer of a model whose maps all keep their size (it resizes its
        input to its own size first);
    (d) its channels are on dim 1 (`channel_dims`: not a ConvNeXt block's (B, H, W, C);
        `map_dims` has those, read with their channels moved to dim 1).

    Both forwards compute shapes only where the model allows, on the meta device (`_probe`)."""
    maps, turned, _ = _image_maps(model, x, output)
    return {name: shape for name, shape in maps.items() if name not in turned}


def _image_maps(
    model: nn.Module, x: Tensor, output: OutputSelector
) -> tuple[dict, dict[str, int], _Shapes]:
    """({name: (1, C, H, W)} of the outputs that pass (a)-(c), a channels-last one's with its
    channels moved to dim 1 (as its last call held them); {name: channel dim} of those off
    dim 1, which fail (d); what the forward of two images showed (`_Shapes`: the layers the
    logits are not computed from, each layer's calls, each call's channel dim))."""
    x, model = check_images(x), unwrap(model)  # named as `layer_names` names them
    images = x[:1].expand(2, *x.shape[1:])  # (2, C, H, W)
    pair, meta = _probe(model, images, output, partial=False)
    assert pair is not None  # partial=False: a forward that fails raises
    larger = x[:1].repeat_interleave(2, 2).repeat_interleave(2, 3)  # (1, C, 2H, 2W)
    grown, _ = _probe(model, larger, output, partial=True, meta=meta)
    if grown is not None and not _grows(pair.last, grown.last):
        grown = None  # no map grew: the model resizes its input itself; (c) cannot tell
    maps, turned = {}, {}
    for name, shape in pair.last.items():
        dim = pair.channel_dims.get(name, 1)
        if len(shape) != 4 or dim == 0 or name in pair.padded | pair.attention:
            continue
        shape = as_map_shape(shape, dim)  # (B, H, W, C) read as (B, C, H, W)
        big = grown.last.get(name) if grown is not None else None
        if grown is not None and big is not None:  # moved as the larger forward held it
            big = as_map_shape(big, grown.channel_dims.get(name, 1))
        if shape[0] == 2 and (big is None or (len(big) == 4 and _follows(big, shape))):
            maps[name] = (1, *shape[1:])
            if dim != 1:
                turned[name] = dim
    return maps, turned, pair


def _grows(last: dict[str, tuple], grown: dict[str, tuple]) -> bool:
    """Whether some 4-D output's H, W changed with the larger images (not: a model that
    resizes them to its own size first, whose every map would fail (c))."""
    return any(
        len(big) == 4 and len(last.get(name, ())) == 4 and big[2:] != last[name][2:]
        for name, big in grown.items()
    )


def _follows(big: tuple, shape: tuple) -> bool:
    """Both of H, W differ at the larger size; or a global pool's 1×1, which has none to follow
    (the explorer's feature view shows 1×1 maps)."""
    return (big[2] != shape[2] and big[3] != shape[3]) or big[2:] == shape[2:] == (1, 1)


@dataclass(frozen=True)
class _Shapes:
    """What one forward showed: each layer's last output shape, in the order of last calls;
    the channel dims off 1 (`CallOrder.channel_dims`, each layer's last call's); the names a
    padding op answered; those whose output the logits are not computed from
    (`graph_fed_maps`); those holding attention weights; {label: (name, channel dim)} of
    each call with a 4-D output, in the order the calls finish (`call_label`)."""

    last: dict[str, tuple]
    channel_dims: dict[str, int]
    padded: set[str]
    unfed: frozenset[str] = frozenset()  # outputs with a graph node the logits do not reach
    calls: dict[str, int] = field(default_factory=dict)  # name -> its calls, every one counted
    attention: set[str] = field(default_factory=set)
    call_dims: dict[str, tuple[str, int]] = field(default_factory=dict)


def _probe(
    model: nn.Module, x: Tensor, output: OutputSelector, *, partial: bool, meta: bool | None = None
) -> tuple[_Shapes | None, bool]:
    """(shapes, on meta) of one forward of x, on the meta device where the model runs there
    (its parameters and buffers swapped for meta tensors by torch.func.functional_call: shapes
    without arithmetic), else a no-grad forward on x's device. meta None: the meta device
    first; True / False: that one only. partial: a forward that raises gives the calls before
    it instead of raising (the larger images of `image_maps` reach a Flatten-Linear head)."""
    if meta is not False:  # the graph too, but for the larger images (`graph_fed_maps`)
        graph = x.detach().requires_grad_(not partial)
        shapes, error = _run(model, lambda: _on_meta(model, graph), output, graph=not partial)
        if error is None or meta:
            return (shapes if error is None or partial else None), True
    shapes, error = _run(model, lambda: forward(model, x, output, logits=False))
    if error is not None and not partial:
        raise error
    return shapes, False


def _run(
    model: nn.Module, call: Callable[[], Any], output: OutputSelector = None, graph: bool = False
) -> tuple[_Shapes, Exception | None]:
    """The shapes `call()` (a forward of model) shows, and the error it raised (None: none).
    torch.compile'd children run as plain modules: new shapes would recompile them.
    graph: with autograd on (the images require grad), the layers whose output has a node
    the logits' graph does not reach (`_Shapes.unfed`): on the meta device the graph is
    Python objects only (+3 ms on a Hugging Face ResNet-18's 52 ms probe, one thread)."""
    error, out, nodes = None, None, {}
    record = Hooks()
    if graph:
        record.after((m, _node_of(nodes, n)) for n, m in model.named_modules() if n)
    with (
        FollowLayouts() as layouts,
        CallOrder(model, layouts=layouts) as order,
        record,
        torch.set_grad_enabled(graph),
    ):
        try:
            out = torch.compiler.disable(call, recursive=True)()
        except Exception as raised:  # noqa: BLE001 - the caller decides
            error = raised
    last: dict[str, tuple] = {}
    calls: dict[str, int] = {}
    for name, shape in order.calls:
        calls[name] = calls.get(name, 0) + 1
        if shape is not None:
            last.pop(name, None)
            last[name] = shape
    unfed = _unfed(nodes, out, output) if graph and error is None else frozenset()
    found = (order.channel_dims, order.padded, unfed, calls, order.attention, _labelled(order))
    return _Shapes(last, *found), error


def _labelled(order: CallOrder) -> dict[str, tuple[str, int]]:
    """{label: (name, channel dim)} of the calls `order` saw with a 4-D output, each call's
    own dim (`CallOrder.dims`: one module may be called in two layouts)."""
    count: dict[str, int] = {}
    found = {}
    for (name, shape), dim in zip(order.calls, order.dims, strict=True):
        count[name] = count.get(name, 0) + 1
        if shape is not None and len(shape) == 4:
            found[call_label(name, count[name])] = (name, dim)
    return found


def _node_of(nodes: dict[str, Any], name: str) -> Callable:
    """A forward hook keeping the graph node of the module's output at its last call (taken
    then: a later in-place op gives the tensor a node of its own)."""

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        t = output_tensor(out, module)
        if t is not None:
            nodes[name] = t.grad_fn

    return hook


def _unfed(nodes: dict[str, Any], out: Any, output: OutputSelector) -> frozenset[str]:
    """The names whose node the logits' graph does not reach back to; none where the logits
    have no graph or are not found (nothing can be told then)."""
    try:
        logits = select_logits(out, output)
    except ExplainError:
        return frozenset()
    if logits.grad_fn is None:
        return frozenset()
    seen, stack = set(), [logits.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(n for n, _ in node.next_functions)
    return frozenset(n for n, node in nodes.items() if node is not None and node not in seen)


def _on_meta(model: nn.Module, x: Tensor) -> Any:
    """model(x) with meta parameters, buffers and images; a meta tensor the forward caches on a
    module (`self.cache = ...`, a tuple of them, or a buffer it registers or sets:
    `self.scale = ...` on a `register_buffer("scale", None)`, which lands in `_buffers`) is
    put back as it was, not left on the meta device (`tensors_kept`)."""
    state = {n: t.to("meta") for n, t in model.named_parameters()}
    state.update((n, t.to("meta")) for n, t in model.named_buffers())
    with tensors_kept(model, meta=True):
        return functional_call(model, state, (x.to("meta"),))


@contextmanager
def tensors_kept(model: nn.Module, meta: bool = False) -> Iterator[None]:
    """Inside the block the model's forward may cache tensors on its modules (`self.cache =
    ...`, a buffer registered as None and set); after it, each (each meta one, with `meta`)
    is as it was: a forward that only looks leaves no trace."""
    before = [(table, dict(table)) for m in model.modules() for table in _tables(m)]
    try:
        yield
    finally:
        for table, saved in before:
            for key, value in list(table.items()):
                if _holds_tensor(value, meta) and saved.get(key) is not value:
                    if key in saved:
                        table[key] = saved[key]
                    else:
                        del table[key]


def _holds_tensor(value: Any, meta: bool) -> bool:
    """A tensor (a meta one, with `meta`), or a tuple or list holding one (a rotary
    embedding's (cos, sin) cache)."""
    for v in value if type(value) in (tuple, list) else (value,):
        if isinstance(v, Tensor) and (v.is_meta or not meta):
            return True
    return False


def _tables(module: nn.Module) -> list[dict]:
    """Where a module keeps tensors: its attributes, its buffers (a None buffer set in forward)
    and parameters (one a lazy layer makes at its first call)."""
    return [vars(module), module._buffers, module._parameters]


def _spatial(
    model: nn.Module, x: Tensor, output: OutputSelector
) -> tuple[list, dict[str, int], _Shapes]:
    """([(name, (1, C, H, W))] of the maps with H·W > 1, channels moved to dim 1, {name:
    channel dim} of those off it, what the forward showed (`_image_maps`)."""
    maps, turned, pair = _image_maps(model, x, output)
    spatial = [(n, s) for n, s in maps.items() if is_spatial(s) and not is_compiled_inner(n, maps)]
    return spatial, turned, pair


def per_image(t: Tensor, layer: str, images: int, fix: str) -> Tensor:
    """`t`, what `layer` gave for `images` images, if its first dim is theirs; else an
    ExplainError naming the layer and `fix`: a window attention's output has one row per
    window, which a per-image method would read as images (window 0 drawn as the map)."""
    if len(t) != images:
        raise ExplainError(
            f"layer {layer!r} gives {len(t)} rows for {images} image{'s' * (images != 1)} (one "
            "per window or token group, or one image's: a layer the forward calls once per "
            f"image; its first dim is not the images'); {fix}"
        )
    return t


def graph_fed_maps(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """`spatial_layers` less those the logits are not computed from, where any are: a map the
    forward computes for another output leads Grad-CAM nowhere (a decoder kept for a
    reconstruction loss, `self.recon = self.decoder(h)`, was the default layer, and explain,
    the report and the explorer's prediction failed: 'the logits do not depend on layer').
    Read from the autograd graph of the shape probe on the meta device (`_Shapes.unfed`); a
    map computed without autograd (a torch.no_grad() backbone, a reentrant checkpoint's
    block) is kept, for Grad-CAM to say why it has no gradient, or to read it where the
    backward recomputes it. Each is labelled by its last call, whose map was judged: `relu #3`
    for a module called three times (`call_label`), its name for a module called once.
    `reached.feeding_maps` also leaves out those the graph reaches whose gradient is zero.
    Not a map held channels last (`map_dims`): a ConvNeXt holds those on its blocks' residual
    branches, the stream the head reads is each block's (B, C, H, W) sum (where that sum is
    no module's output, the last was the branch's last Linear, leaving the shortcut out)."""
    spatial, turned, pair = _spatial(model, x, output)
    names = [name for name, _ in spatial if name not in turned]  # Grad-CAM's default: why
    fed = [name for name in names if name not in pair.unfed] or names
    return [call_label(name, pair.calls.get(name, 1)) for name in fed]
