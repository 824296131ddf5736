"""A model's layers by name and in forward order.

Layers are named by their dotted module name, as `model.named_modules()` names them
(`features.3`, `layer4.1.relu`). Registration order is not the order images meet them (a
model may register its head first), so "the last spatial layer" and "the first conv" are
read from a forward pass (`trace`; `first_called` in `cnnlab.inspect.first`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor
from cnnlab.inspect.layouts import FollowLayouts, Layouts
from cnnlab.inspect.logits import OutputSelector, check_images, forward, select_logits
from cnnlab.inspect.names import an, function_site, meant, not_a_name, split_call
from cnnlab.inspect.preserve import is_compiled_inner, plain_name, preserved, unwrap, unwrap_layer


def layer_names(model: nn.Module) -> list[str]:
    """Dotted names of every submodule (the root excluded), in registration order; not the
    modules that compute a parametrized weight (`weight_code`), nor the containers the model
    never calls (`never_called`: an nn.ModuleList), which no layer option takes. A wrapped
    model's (torch.compile, nn.DataParallel, DDP) are its inner module's, as `unwrap` names
    them (`features.3`, not `_orig_mod.features.3`): the names explain and diagnose use."""
    model = unwrap(model)
    code = weight_code(model)
    return [
        name
        for name, module in model.named_modules()
        if name and name not in code and not never_called(module)
    ]


def never_called(module: nn.Module) -> bool:
    """A container without a forward of its own (nn.ModuleList, nn.ModuleDict): the model
    calls its items, never it, so it has no output to read. Not a module whose forward is
    its own attribute (torch.compile's OptimizedModule) or whose __call__ is its own."""

    def owner(name: str) -> type:  # read statically: a TorchScript class's forward raises
        return next(k for k in type(module).__mro__ if name in vars(k))

    own = getattr(module, "__dict__", {})
    return owner("forward") is nn.Module and "forward" not in own and owner("__call__") is nn.Module


def weight_code(model: nn.Module) -> set[str]:
    """Names of the modules torch.nn.utils.parametrize adds to a layer (`conv.parametrizations`,
    `conv.parametrizations.weight`, `conv.parametrizations.weight.0`: weight_norm,
    spectral_norm): they run when the layer reads its weight, on the weight, so their outputs
    are weights (a conv's (F, C, kh, kw) looks like a batch of maps), not steps on the image."""
    owners = [n for n, m in model.named_modules() if parametrize.is_parametrized(m)]
    inside = {f"{n}.parametrizations" if n else "parametrizations" for n in owners}
    below = tuple(f"{p}." for p in inside)
    return {n for n, _ in model.named_modules() if n in inside or n.startswith(below)}


def is_leaf(module: nn.Module) -> bool:
    """No child module but the parametrizations of its weights: a ParametrizedConv2d is one
    layer, as the Conv2d it was."""
    if not parametrize.is_parametrized(module):
        return not module._modules  # (a TorchScript module's _modules cannot be iterated)
    return all(name == "parametrizations" for name in module._modules)


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name`; ExplainError listing the valid names otherwise (also for
    a module of `weight_code`, which computes a layer's weight: the layer is named instead).
    A wrapped model's layers are named as `layer_names` lists them, or with the prefix. A
    call's label (`relu #2`, as the summary labels calls) gives its module; the call is read,
    and one past the last refused, by `Capture(..., calls=True)`."""
    model, name = unwrap_layer(model, name)
    modules = dict(model.named_modules())
    if isinstance(name, str) and name not in modules:  # the summary's name of a layer under a
        plain = {plain_name(n): n for n in modules}  # compiled child: `0.2` for `0._orig_mod.2`
        name = plain.get(name, name)
    if refused := not_a_name(name, modules):  # a module (as Captum takes layers), a list
        raise ExplainError(refused)
    name = split_call(name, modules)[0]
    if not isinstance(name, str) or not name or name not in modules:
        names = layer_names(model)
        valid = ", ".join(names) or "(the model has no submodules)"
        said = f"unknown layer {name!r}{meant(name, names)}"  # the layer meant, then them all
        raise ExplainError(function_site(name, modules) or f"{said}; valid layer names: {valid}")
    if name in weight_code(model):
        layer = name[: name.index("parametrizations")].rstrip(".") or "(the model)"
        raise ExplainError(
            f"{name!r} computes the weight of layer {layer!r} (weight_norm/spectral_norm), "
            f"it is not a step on the image; name the layer itself: {layer!r}"
        )
    if name and never_called(modules[name]):  # its items': "produced no tensor output" was said
        kind = type(modules[name]).__name__
        items = [f"{name}.{child}" for child, _ in modules[name].named_children()]
        which = (
            f"name one of them: {', '.join(items)}"
            if items
            else "it holds none: choose another layer"
        )
        raise ExplainError(
            f"layer {name!r} is {an(kind)} {kind}, a container the model never calls itself "
            f"(it calls its layers); {which}"
        )
    return modules[name]


class CallOrder:
    """`with CallOrder(model, names) as order:` records, in `order.calls`, every call of the
    named modules (None: every submodule but `weight_code`; "" is the model itself) as
    (name, output shape, or None for a non-tensor output; a tuple's first tensor may count,
    see `output_tensor`), in the order the calls finish: children before parents.
    With `layouts` (from `FollowLayouts`), `order.channel_dims` maps the names whose last
    output of 3+ dims has its channels off dim 1 (a ConvNeXt block's (B, H, W, C) layers) to
    the dim that holds them, and `order.padded` holds the names whose output a padding op
    returned (a ZeroPad2d, a 'same' padding module: the input's map with a border), and
    `order.attention` those whose output holds attention weights (`Layouts.attention`)."""

    def __init__(
        self, model: nn.Module, names: Iterable[str] | None = None, layouts: Layouts | None = None
    ):
        modules = dict(model.named_modules())  # "" is the model itself
        if names is None:
            code = weight_code(model)
            self.modules = {name: m for name, m in modules.items() if name and name not in code}
        else:
            self.modules = {
                n: modules[n] if n in modules else resolve_layer(model, n) for n in names
            }
        self.calls: list[tuple[str, tuple | None]] = []
        self.layouts = layouts
        self.channel_dims: dict[str, int] = {}
        self.padded: set[str] = set()
        self.attention: set[str] = set()
        self._hooks = Hooks()

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            out = output_tensor(out, module)  # a tensor, or an HF layer's (hidden_states, ...)
            self.calls.append((name, tuple(out.shape) if out is not None else None))
            if self.layouts is not None and out is not None and self.layouts.padded(out):
                self.padded.add(name)
            if self.layouts is not None and out is not None and self.layouts.attention(out):
                self.attention.add(name)
            if self.layouts is not None and out is not None and out.ndim > 2:
                self.channel_dims[name] = self.layouts.of(out)
                if self.channel_dims[name] == 1:
                    del self.channel_dims[name]

        return hook

    def __enter__(self) -> CallOrder:
        self.calls = []
        self.padded = set()
        self.attention = set()
        self._hooks.after((module, self._hook(name)) for name, module in self.modules.items())
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def first_calls(self) -> list[str]:
        """The names called, each once, in the order of its first call."""
        return list(dict.fromkeys(name for name, _ in self.calls))


def trace(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[tuple[str, tuple]]:
    """(name, output shape) of every submodule with a tensor output, in the order their forward
    calls finish (children before their parent), from one no-grad, eval-mode pass of x[:1].
    A module called several times appears once, at its last call; `layer_calls` lists each
    call, labelled as explain, the report and the explorer read it (`relu`, `relu #2`).

    TorchScript (torch.jit.script, trace or load) runs where no hook sees it: a model
    scripted whole gives [] and a scripted child is left out, its other layers listed. No
    error: each caller that finds no layer it needs says so, naming TorchScript
    (`scripted_whole(model)` ends its message: the report's, probe's, `default_layer`'s)."""
    return _traced(model, x, output)[0]


def _traced(
    model: nn.Module, x: Tensor, output: OutputSelector, logits: bool = True
) -> tuple[list, dict]:
    """trace(model, x, output) and {name: channel dim} of the outputs with channels off dim 1
    (logits=False: the model's output need not be logits). In eval mode: a train-mode
    forward moved BatchNorm's running statistics and drew dropout masks, and a BatchNorm1d
    refuses one image."""
    x, model = check_images(x, flat=True), unwrap(model)  # named as `layer_names` names them
    with preserved(model, requires_grad=None), FollowLayouts() as layouts:
        with CallOrder(model, layouts=layouts) as order, torch.no_grad():
            forward(model, x[:1], output, logits=logits)
    last: dict[str, tuple] = {}
    for name, shape in order.calls:
        if shape is not None:
            last.pop(name, None)
            last[name] = shape
    return list(last.items()), order.channel_dims


def channel_dims(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{name: the dim of its output that holds the channels} for the layers whose output (of
    3+ dims) holds them off dim 1, as after a permute; a layer not named has them on dim 1."""
    return _traced(model, x, output, logits=False)[1]


def channel_dim(model: nn.Module, x: Tensor, layer: str, output: OutputSelector = None) -> int:
    """The dim of `layer`'s output that holds its channels: 1, or where a permute put them
    (the last, for a ConvNeXt block's (B, H, W, C) layers or a ViT's (B, N, C) tokens). A
    call's label (`relu #2`) is judged by its module."""
    layer = split_call(layer, dict(unwrap(model).named_modules()))[0]
    return channel_dims(model, x, output).get(layer, 1)


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
    spatial, turned, _, _ = _spatial(model, x, output)
    return [name for name, _ in spatial if name not in turned]


def map_dims(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{name: the dim of its output that holds the channels} of the maps of the image with
    H·W > 1, in forward order: `spatial_layers` (dim 1) and the 4-D outputs holding them
    elsewhere (3: a ConvNeXt block's (B, H, W, C) between its permutes) that pass
    `image_maps`' (a)-(c) as `t.movedim(dim, 1)`, the map Grad-CAM and `feature_maps` read."""
    spatial, turned, _, _ = _spatial(model, x, output)
    return {name: turned.get(name, 1) for name, _ in spatial}


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
    maps, turned, _, _ = _image_maps(model, x, output)
    return {name: shape for name, shape in maps.items() if name not in turned}


def _image_maps(
    model: nn.Module, x: Tensor, output: OutputSelector
) -> tuple[dict, dict[str, int], frozenset[str], dict[str, int]]:
    """({name: (1, C, H, W)} of the outputs that pass (a)-(c), a channels-last one's with its
    channels moved to dim 1; {name: channel dim} of those off dim 1, which fail (d); the
    layers whose output the logits are not computed from: `_Shapes.unfed`; {name: calls})."""
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
    return maps, turned, pair.unfed, pair.calls


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
    the channel dims off 1 (`CallOrder.channel_dims`); the names a padding op answered;
    those whose output the logits are not computed from (`graph_fed_maps`); those holding
    attention weights."""

    last: dict[str, tuple]
    channel_dims: dict[str, int]
    padded: set[str]
    unfed: frozenset[str] = frozenset()  # outputs with a graph node the logits do not reach
    calls: dict[str, int] = field(default_factory=dict)  # name -> its calls, every one counted
    attention: set[str] = field(default_factory=set)


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
    return _Shapes(last, order.channel_dims, order.padded, unfed, calls, order.attention), error


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
) -> tuple[list, dict[str, int], frozenset[str], dict[str, int]]:
    """([(name, (1, C, H, W))] of the maps with H·W > 1, channels moved to dim 1, {name:
    channel dim} of those off it, the layers the logits are not computed from, {name: calls})."""
    maps, turned, unfed, calls = _image_maps(model, x, output)
    spatial = [(n, s) for n, s in maps.items() if is_spatial(s) and not is_compiled_inner(n, maps)]
    return spatial, turned, unfed, calls


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
    spatial, turned, unfed, calls = _spatial(model, x, output)
    names = [name for name, _ in spatial if name not in turned]  # Grad-CAM's default: why
    fed = [name for name in names if name not in unfed] or names
    return [call_label(name, calls.get(name, 1)) for name in fed]
