"""A model's layers by name and in forward order.

Layers are named by their dotted module name, as `model.named_modules()` names them
(`features.3`, `layer4.1.relu`). Registration order is not the order images meet them (a
model may register its head first), so "the last spatial layer" and "the first conv" are
read from a forward pass (`trace`; `first_called` in `cnnlab.inspect.first`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks, output_tensor
from cnnlab.inspect.layouts import FollowLayouts, Layouts
from cnnlab.inspect.logits import OutputSelector, check_images, forward
from cnnlab.inspect.names import an, function_site, meant, not_a_name, split_call
from cnnlab.inspect.preserve import plain_name, preserved, unwrap, unwrap_layer


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
    `order.attention` those whose output holds attention weights (`Layouts.attention`), and
    `order.dims` the channel dim of each call's own output, one per entry of `calls` (1 for
    a non-tensor output or one of < 3 dims): one GELU module applied to a conv's (B, C, H, W)
    and to a Linear's (B, H, W, C) holds them on 1, then on 3."""

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
        self.dims: list[int] = []
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
            dim = self.layouts.of(out) if self.layouts is not None and out is not None else 1
            self.dims.append(dim if out is not None and out.ndim > 2 else 1)
            if self.layouts is not None and out is not None and out.ndim > 2:
                self.channel_dims[name] = dim
                if dim == 1:
                    del self.channel_dims[name]

        return hook

    def __enter__(self) -> CallOrder:
        self.calls = []
        self.dims = []
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
) -> tuple[list, dict, dict]:
    """trace(model, x, output), {name: channel dim} of the outputs with channels off dim 1
    (each module's last call's) and {label: channel dim} of the calls with them off dim 1
    (`call_label`) (logits=False: the model's output need not be logits). In eval mode: a
    train-mode forward moved BatchNorm's running statistics and drew dropout masks, and a
    BatchNorm1d refuses one image."""
    x, model = check_images(x, flat=True), unwrap(model)  # named as `layer_names` names them
    with preserved(model, requires_grad=None), FollowLayouts() as layouts:
        with CallOrder(model, layouts=layouts) as order, torch.no_grad():
            forward(model, x[:1], output, logits=logits)
    last: dict[str, tuple] = {}
    counts: dict[str, int] = {}
    turned: dict[str, int] = {}
    for (name, shape), dim in zip(order.calls, order.dims, strict=True):
        counts[name] = counts.get(name, 0) + 1
        if dim != 1:
            turned[call_label(name, counts[name])] = dim
        if shape is not None:
            last.pop(name, None)
            last[name] = shape
    return list(last.items()), order.channel_dims, turned


def channel_dims(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{name: the dim of its output that holds the channels} for the layers whose output (of
    3+ dims) holds them off dim 1, as after a permute; a layer not named has them on dim 1."""
    return _traced(model, x, output, logits=False)[1]


def call_channel_dims(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{call label: the dim of its output that holds the channels} (`call_label`: `act`,
    `act #2`) of the calls whose output (of 3+ dims) holds them off dim 1, each call's own:
    one GELU module applied to a conv's (B, C, H, W) and to a Linear's (B, H, W, C) is
    `act #2` only."""
    return _traced(model, x, output, logits=False)[2]


def channel_dim(model: nn.Module, x: Tensor, layer: str, output: OutputSelector = None) -> int:
    """The dim of `layer`'s output that holds its channels: 1, or where a permute put them
    (the last, for a ConvNeXt block's (B, H, W, C) layers or a ViT's (B, N, C) tokens). A
    call's label (`relu #2`) is judged by that call's own output, a module's name by its
    first call's."""
    name, call = split_call(layer, dict(unwrap(model).named_modules()))
    return call_channel_dims(model, x, output).get(call_label(name, call), 1)
