"""A fast inference copy of a user's model, for the methods that are a forward and a
backward pass in eval mode (saliency, SmoothGrad, Grad-CAM).

The copy has every BatchNorm that only normalises one conv's output folded into that conv
and, optionally, its conv weights in channels-last layout. It changes the maps only by float
rounding (~1e-6, BENCHMARKS.md) and costs ~0.02 s for ResNet-18; the user's model is never
touched (the copy shares its unchanged tensors, the folded convs get new ones).
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from itertools import chain
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from cnnlab.errors import ExplainError


class _KeepLayer(fx.Tracer):
    """fx tracer that keeps the module named `keep` whole, so hooks on it still fire, and
    notes whether the forward switched autograd off for any op (`with torch.no_grad():`
    around a frozen backbone): fx records the ops, not the grad mode they ran in, so a
    graph of such a forward would pass gradients where the model passes none."""

    def __init__(self, keep: str | None):
        super().__init__()
        self.keep = keep
        self.grad_off = False

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return qualified_name == self.keep or super().is_leaf_module(m, qualified_name)

    def create_node(self, *args, **kwargs) -> fx.Node:
        self.grad_off |= not torch.is_grad_enabled()
        return super().create_node(*args, **kwargs)


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
    (data-dependent control flow), that carries hooks (which fx would bypass), or whose
    forward switches autograd off (which fx would drop), is returned as it is. Only exact
    nn.Conv2d / nn.BatchNorm2d types, each called once, whose conv output feeds nothing
    else, are folded; the folded convs get new tensors, `model` is not touched.
    """
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()):
        return model
    try:  # the copy is only a speed-up: a model that cannot be copied runs as it is
        copy = module_copy(model)  # deepcopy: TypeError for a lock, RuntimeError for a view...
        tracer = _KeepLayer(keep)
        with torch.enable_grad():
            gm = fx.GraphModule(copy, tracer.trace(copy))
    except Exception:  # ...and fx raises many error types for untraceable Python
        return model
    if tracer.grad_off:  # the graph would lose the forward's no_grad block
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


# Batch x H x W below which the inference copy (fx trace, folded BatchNorm, weights re-laid
# out: tens of ms for a ResNet-18) costs more than it saves. ResNet-18 shape, one thread, CPU
# time of the model itself over the copy's, 7 alternated rounds: Grad-CAM 0.83x on one 224²
# image, 0.70x on one 64² image, 0.89x on 4, 0.95x on 8, 1.05x on 16, 1.04x on 32 images of
# 224²; saliency 0.90x on one, 1.08x on 8, 1.09x on 16. About five 224² images: 2^18.
SMALL_BATCH = 2**18


def _pixels(x: Tensor) -> int:
    """Images x height x width of a batch (for another rank, its number of elements)."""
    return x.shape[0] * x.shape[-2] * x.shape[-1] if x.dim() == 4 else x.numel()


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
    False: default layout only. With None, a batch under `SMALL_BATCH` pixels runs on `model`
    itself: the copy costs more than it saves there.
    """
    if channels_last is None and _pixels(x) < SMALL_BATCH:
        return fn(model, x)
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
