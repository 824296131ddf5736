"""The one mechanism every explain method shares: run a user's model without changing it,
name its layers, capture a layer's own output (and the gradient with respect to it).

Any `nn.Module` image classifier works: layers are named by their dotted module name, as
`model.named_modules()` names them. The model is put in eval mode with its parameters frozen
for the duration of a call and given back exactly as it was (each module's train/eval flag,
each parameter's `requires_grad`, no hook left behind).

In-place ops: a forward hook replaces the captured layer's output, for the rest of the
forward pass, by a *clone*. A later `ReLU(inplace=True)` or `out += identity` then writes into
the clone, and the captured tensor keeps the layer's own value and its own gradient, exactly
as on a copy of the model without in-place ops (tests/test_explain_gradcam.py checks this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from itertools import chain
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from cnnlab.errors import CnnlabError

# How to pick the logits from a model that returns a tuple, list or dict: an index, a key,
# or a function of the raw output. None means the output must already be a (B, K) tensor.
OutputSelector = int | str | Callable[[Any], Tensor] | None


class ExplainError(CnnlabError, ValueError):
    """Bad input to an explain method: unknown layer, target, image shape or model output."""


def layer_names(model: nn.Module) -> list[str]:
    """Dotted names of every submodule (the root excluded), in registration order."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name`; ExplainError listing the valid names otherwise."""
    modules = dict(model.named_modules())
    if not isinstance(name, str) or not name or name not in modules:
        valid = ", ".join(layer_names(model)) or "(the model has no submodules)"
        raise ExplainError(f"unknown layer {name!r}; valid layer names: {valid}")
    return modules[name]


def needs_gradients(method: str) -> None:
    """ExplainError inside `torch.inference_mode()`: `method` takes gradients, and inference
    mode makes every tensor computed in it a tensor without autograd history, which
    `torch.enable_grad()` cannot undo (`torch.no_grad()` around a call is fine)."""
    if torch.is_inference_mode_enabled():
        raise ExplainError(
            f"{method} needs gradients, and torch.inference_mode() switches autograd off; "
            f"call {method} outside the torch.inference_mode() block (torch.no_grad() is fine)"
        )


@contextmanager
def inspecting(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters inside the block; the model as it was afterwards.

    Eval mode makes each image's result independent of the rest of the batch (BatchNorm uses
    its running statistics, dropout is off). Frozen parameters: the forward saves fewer tensors
    and no weight gradient is computed.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)


def check_images(x: Tensor) -> Tensor:
    """x must be a float (B, C, H, W) tensor with B ≥ 1."""
    if not isinstance(x, Tensor):
        raise ExplainError(f"images must be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0:
        raise ExplainError(
            f"images must have shape (B, C, H, W) with B ≥ 1, got {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise ExplainError(
            f"images must be floating point (normalized as for training), got {x.dtype}"
        )
    return x


def select_logits(out: Any, output: OutputSelector = None) -> Tensor:
    """The (B, K) logits inside a model's raw output, chosen by `output`."""
    if callable(output):
        out = output(out)
    elif output is not None:
        try:
            out = out[output]
        except (KeyError, IndexError, TypeError) as error:
            raise ExplainError(
                f"output={output!r} does not select anything in the model's "
                f"{type(out).__name__} output: {error}"
            ) from error
    if not isinstance(out, Tensor):
        how = "a key" if isinstance(out, dict) else "an index"
        raise ExplainError(
            f"the model returns a {type(out).__name__}, not a logits tensor; pass output= "
            f"({how} or a function) to pick the logits"
        )
    if out.dim() != 2:
        raise ExplainError(
            f"the model's logits must have shape (B, K), got {tuple(out.shape)}; "
            "pass output= (a function) to reduce them"
        )
    return out


def forward(
    model: nn.Module, x: Tensor, output: OutputSelector = None, *, logits: bool = True
) -> Any:
    """model(x) as (B, K) logits (logits=False: the raw output, for methods that only read
    layers); a clear error when the images do not fit the model."""
    try:
        out = model(x)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExplainError(
            f"the model cannot run on images of shape {tuple(x.shape)} ({first}); give images "
            "with the channels and size the model was trained on"
        ) from error
    return select_logits(out, output) if logits else out


def resolve_target(target: int | Iterable[int] | Tensor | None, logits: Tensor) -> Tensor:
    """Class index per image, (B,) int64; None means the predicted class."""
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    t = torch.as_tensor(target, device=logits.device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ExplainError(f"target must be integer class indices, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ExplainError(f"target has {t.numel()} entries for a batch of {batch} images")
    bad = t[(t < 0) | (t >= classes)]
    if bad.numel():
        raise ExplainError(
            f"target {bad[0].item()} is outside the model's classes 0..{classes - 1}"
        )
    return t.clone()


class Capture:
    """Forward hooks that record the outputs of named layers during `with Capture(...)`.

    outputs[name] is the tensor the layer returned on its last call in the forward pass.
    leaf=True: the output is detached and made a leaf that requires grad, and grad mode is
    switched on from there: the forward up to the layer can then run under `torch.no_grad()`
    (no graph, no saved tensors) and backward stops at the layer. The rest of the forward
    pass always sees a clone, so later in-place ops cannot overwrite the captured value.
    inputs=True: record each layer's (first) input instead, before the layer runs; the layer
    gets a clone, so an in-place layer (ReLU(inplace=True)) leaves the recorded input intact.
    transform: record transform(output) computed inside the hook (before any later op can
    touch the output), and leave the output itself alone: no clone, no full map kept.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Iterable[str],
        *,
        leaf: bool = False,
        inputs: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
    ):
        self.model = model
        self.names = list(dict.fromkeys(names))
        self.modules = [resolve_layer(model, n) for n in self.names]
        self.leaf = leaf
        self.inputs = inputs
        self.transform = transform
        self.outputs: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def _pre_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> Any:
            if not args or not isinstance(args[0], Tensor):
                return None
            self.outputs[name] = args[0]
            return (args[0].clone(), *args[1:])

        return hook

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, out: Any) -> Any:
            if not isinstance(out, Tensor):
                return None  # nothing to capture; `tensor()` says so if asked
            if self.transform is not None:
                self.outputs[name] = self.transform(out)
                return None
            if self.leaf:
                out = out.detach().requires_grad_(True)
                torch.set_grad_enabled(True)  # the enclosing no_grad() restores it on exit
            self.outputs[name] = out
            return out.clone()

        return hook

    def __enter__(self) -> Capture:
        self.outputs = {}
        for name, module in zip(self.names, self.modules, strict=True):
            if self.inputs:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def tensor(self, name: str) -> Tensor:
        """The captured output of `name`; ExplainError if the forward never produced one."""
        if name not in self.outputs:
            raise ExplainError(
                f"layer {name!r} produced no tensor output in the forward pass (it is not "
                "called, or returns a tuple); choose another layer"
            )
        return self.outputs[name]


def trace(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[tuple[str, tuple]]:
    """(name, output shape) of every submodule with a tensor output, in the order their forward
    calls finish (children before their parent), from one no-grad pass of x[:1].
    A module called several times appears once, at its last call."""
    order: dict[str, tuple] = {}
    handles = []

    def hook(name: str) -> Callable:
        def fn(module: nn.Module, inputs: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                order.pop(name, None)
                order[name] = tuple(out.shape)

        return fn

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            forward(model, x[:1], output)
    finally:
        for handle in handles:
            handle.remove()
    return list(order.items())


def is_spatial(shape: tuple) -> bool:
    """A 4-D (B, C, H, W) output with more than one position."""
    return len(shape) == 4 and shape[2] * shape[3] > 1


def default_layer(model: nn.Module, x: Tensor, output: OutputSelector = None) -> str:
    """The last module, in forward order, whose output is 4-D with H·W > 1 (DESIGN.md)."""
    spatial = [name for name, shape in trace(model, x, output) if is_spatial(shape)]
    if not spatial:
        raise ExplainError("the model has no layer with a spatial (B, C, H, W) output, H·W > 1")
    return spatial[-1]


def spatial_layers(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """Names of the layers with a 4-D output with H·W > 1, in forward order."""
    return [name for name, shape in trace(model, x, output) if is_spatial(shape)]


def batches(data: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(x, y) batches from a Tensor (N, C, H, W), an (images, labels) pair (images (N, ...),
    labels (N,)), an object with float .images/.labels, or an iterable of (x, y) batches
    or bare x (a 1-item batch, as a DataLoader of a TensorDataset(x) gives, is x). y is None
    where no labels are given. diagnose reads its data through this too."""
    if isinstance(data, Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i : i + batch_size], None
        return
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
        and data[0].dim() >= 2
        and data[1].dim() == 1
        and len(data[0]) == len(data[1])
    ):
        images, labels = data
        for i in range(0, len(images), batch_size):
            yield images[i : i + batch_size], labels[i : i + batch_size]
        return
    try:
        items = iter(data)
    except TypeError as error:
        raise ExplainError(
            f"data must be a Tensor (N, C, H, W), an (images, labels) pair or an iterable of "
            f"(x, y) batches, got {type(data).__name__}"
        ) from error
    for item in items:
        if isinstance(item, tuple | list) and len(item) >= 2:
            yield item[0], item[1]
        elif isinstance(item, tuple | list) and len(item) == 1:
            yield item[0], None
        elif isinstance(item, Tensor):
            yield item, None
        else:
            raise ExplainError("each batch of data must be an (x, y) pair or a Tensor x")


def as_float(x: Tensor, preprocess: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Images ready for the model: preprocess(x) if given, else uint8 → [0, 1] float."""
    if preprocess is not None:
        return preprocess(x)
    if not x.is_floating_point():
        return x.float() / 255.0
    return x


# --- Speed: an inference copy of the model (BENCHMARKS.md, explain) -----------------------
# Saliency and Grad-CAM are a forward and a backward pass of the user's model in eval mode.
# They run on an inference copy (BatchNorm folded into convs, channels-last conv weights),
# which changes the maps only by float rounding (~1e-6, BENCHMARKS.md); the user's model is
# never touched.


class _KeepLayer(fx.Tracer):
    """fx tracer that keeps the module named `keep` whole, so hooks on it still fire."""

    def __init__(self, keep: str | None):
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return qualified_name == self.keep or super().is_leaf_module(m, qualified_name)


def module_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares the model's parameter and buffer tensors: new
    modules can be put into it, and its modules' tensors replaced, without touching `model`.
    (A deepcopy of ResNet-18's weights cost 0.14 s of CPU under load, ~10 % of a Grad-CAM.)"""
    return deepcopy(model, {id(t): t for t in chain(model.parameters(), model.buffers())})


def fold_batchnorm(model: nn.Module, keep: str | None = None) -> nn.Module:
    """A copy of an eval-mode `model` in which every BatchNorm2d that only normalizes one
    Conv2d's output is folded into that conv (w' = w·γ/σ, b' = (b − μ)·γ/σ + β: an affine map
    after a linear one). The layer `keep` and its output stay exactly as they are.

    Folding needs the data flow, so the model is traced with torch.fx; a model fx cannot trace
    (data-dependent control flow), or that carries hooks (which fx would bypass), is returned
    as it is. Only exact nn.Conv2d / nn.BatchNorm2d types, each called once, whose conv output
    feeds nothing else, are folded; the folded convs get new tensors, `model` is not touched.
    """
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()):
        return model
    try:  # the copy is only a speed-up: a model that cannot be copied runs as it is
        copy = module_copy(model)  # deepcopy: TypeError for a lock, RuntimeError for a view...
        gm = fx.GraphModule(copy, _KeepLayer(keep).trace(copy))
    except Exception:  # ...and fx raises many error types for untraceable Python
        return model
    modules = dict(gm.named_modules())
    if keep is not None and keep not in modules:
        return model  # the layer is never called: let the caller report it on the model
    calls = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    for node in list(gm.graph.nodes):
        conv_node = node.args[0] if node.op == "call_module" and node.args else None
        if not isinstance(conv_node, fx.Node) or conv_node.op != "call_module":
            continue
        conv, bn = modules[conv_node.target], modules[node.target]
        if (
            type(conv) is nn.Conv2d
            and type(bn) is nn.BatchNorm2d
            and not bn.training
            and bn.running_mean is not None
            and keep not in (conv_node.target, node.target)
            and len(conv_node.users) == 1
            and calls.count(conv_node.target) == calls.count(node.target) == 1
        ):
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
            node.replace_all_uses_with(conv_node)
            gm.graph.erase_node(node)
    gm.recompile()
    return _quiet(gm)


def _quiet(gm: fx.GraphModule) -> fx.GraphModule:
    """gm, called through nn.Module.__call__ (hooks and all) instead of fx's wrapper, which
    prints the generated code around a failing line to stderr before it re-raises (a
    channels-last `.view()` fails on purpose in `run_fast`; the library never prints).
    The override lives in a subclass made for gm alone: no other GraphModule is changed."""
    gm.__class__ = type(type(gm).__name__, (type(gm),), {"__call__": nn.Module.__call__})
    return gm


def inference_copy(
    model: nn.Module, keep: str | None = None, channels_last: bool = False
) -> nn.Module:
    """fold_batchnorm(model, keep), with its conv weights in channels-last layout if asked
    (else oneDNN re-lays the weights out in every conv call of a channels-last input).

    Built afresh on each call: ~0.02 s for ResNet-18 on a quiet machine. A cache per model
    (keyed on the tensors' version counters) bought only 2 % there (1.37× vs 1.34× Captum on
    Grad-CAM) and would miss writes through `p.data`, so there is none.
    """
    fast = fold_batchnorm(model, keep)
    if channels_last and fast is not model:  # never re-lay out the user's own weights
        for m in fast.modules():
            if type(m) is nn.Conv2d:
                w = m.weight.detach().contiguous(memory_format=torch.channels_last)
                m.weight = nn.Parameter(w, requires_grad=False)
    return fast


def run_fast(
    fn: Callable[[nn.Module, Tensor], Any],
    model: nn.Module,
    x: Tensor,
    keep: str | None = None,
    channels_last: bool | None = None,
) -> Any:
    """fn(inference_copy(model, keep), x), in channels-last layout when it can.

    channels_last None: try channels-last and, if the model cannot run so (a `.view()` of a
    conv output raises), run it again in the default layout; True: channels-last only;
    False: default layout only.
    """
    if channels_last is False:
        return fn(inference_copy(model, keep), x)
    # channels-last: oneDNN convolutions without layout reorders, ~1.2× (BENCHMARKS.md).
    try:
        fast = inference_copy(model, keep, channels_last=True)
        return fn(fast, x.contiguous(memory_format=torch.channels_last))
    except ExplainError as error:
        if channels_last or not isinstance(error.__cause__, RuntimeError):
            raise
    return fn(inference_copy(model, keep), x)
