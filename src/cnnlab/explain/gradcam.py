"""Grad-CAM and Grad-CAM++ (notes §5.4: where in the image the evidence for a class lies).

At a layer with activations A (B, K, h, w) and gradients G = ∂ logit_t / ∂ A:
    cam = ReLU(Σ_k w_k A_k), upsampled bilinearly to the input size, divided by its max.
The variants differ only in the channel weights w (B, K), one function each in `WEIGHTS`.
A vision transformer's tokens (B, N, C) are read as the map (B, C, h, w) of their patches
(`inspect.tokens`: pytorch-grad-cam's `reshape_transform`, on the model's own patch grid); a
map held channels last (B, h, w, K), a ConvNeXt block's between its permutes, as A.movedim(3,
1), where the forward itself put its channels (`inspect.layouts`), never guessed from sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.explain.saliency import NO_BACKWARD, Target
from cnnlab.inspect import (
    CallOrder,
    Capture,
    OutputSelector,
    check_images,
    default_layer,
    forward,
    gradients,
    is_spatial,
    layer_names,
    needs_gradients,
    preserved,
    resolve_layer,
    resolve_target,
    run_fast,
    spatial_calls,
    unwrap_layer,
)
from cnnlab.inspect.layouts import FollowLayouts
from cnnlab.inspect.names import split_call
from cnnlab.inspect.tokens import Grid, as_map, is_tokens, token_grid


def gradcam_weights(acts: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017): w_k = spatial mean of ∂y/∂A_k.  (B,K,h,w) → (B,K)"""
    return grads.mean((2, 3))


def gradcam_pp_weights(acts: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with Y = exp(S)):
    w_k = Σ_ij α_ij ReLU(g_ij),  α_ij = g² / (2 g² + Σ_ab A_ab · g³)  (g = ∂S/∂A_k, α = 0
    where g = 0). With the exponential the higher derivatives are powers of g; the common factor
    exp(S) is dropped, which the per-image scaling removes anyway.  (B,K,h,w) → (B,K)
    """
    g2 = grads.pow(2)
    g3 = grads.pow(3)
    denom = 2 * g2 + acts.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    return (alpha * grads.clamp(min=0)).sum((2, 3))


WEIGHTS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "gradcam": gradcam_weights,
    "gradcam++": gradcam_pp_weights,
}


def _layer_as_target(model: nn.Module, target: Target, layer: str | None) -> None:
    """ExplainError when the third argument, the target class, names one of the model's
    layers and no layer is given: gradcam(model, x, "layer4") as Captum's
    LayerGradCam(model, layer) and pytorch-grad-cam's target_layers put the layer first."""
    if layer is None and isinstance(target, str):
        name = target.split(" #")[0]
        if name in layer_names(model):
            raise ExplainError(
                f"gradcam's third argument is the target class, got the layer name {target!r}; "
                f"give the layer by keyword: gradcam(model, x, layer={target!r})"
            )


def layer_gradients(
    model: nn.Module,
    x: Tensor,
    layer: str,
    target: Target,
    output: OutputSelector,
    run: nn.Module | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(A, ∂ logit_t/∂A, t) at `layer` from one forward and one backward that stops at it.

    run: the module that computes (`model` itself or its inference copy: `run_fast`); error
    messages name `model`'s layers. The forward up to the layer runs without autograd
    (Capture(leaf=True)), parameters are frozen, so the backward computes only the gradients
    the map needs. A layer inside a reentrant activation checkpoint gets no gradient so (the
    checkpoint runs its block without autograd): `_recomputed_gradients` reads it then.
    The same forward follows where the layer's channels are (`FollowLayouts`): A and its
    gradient held channels last (B, h, w, K) are returned as (B, K, h, w), moved as that
    forward moved them, without a separate pass of x[:1] (5 % of a Grad-CAM of 32 images on
    ResNet-18, one thread).
    layer: a call's label, as the summary labels calls (a module's name: its first call,
    `relu #2` its second; `Capture(calls=True)`).
    """
    run = model if run is None else run
    base, call = split_call(layer, dict(run.named_modules()))
    with (
        FollowLayouts() as layouts,
        CallOrder(run, [base]) as order,
        Capture(run, [layer], leaf=True, calls=True) as cap,
        torch.no_grad(),
    ):
        logits = forward(run, x, output)  # (B, K)
    if layer not in cap.outputs:  # not called, or no tensor out: the calls that would do
        spatial = ", ".join(spatial_calls(model, x, output)) or "(none)"
        raise ExplainError(f"{cap.missing(layer)}; Grad-CAM needs one of: {spatial}")
    acts = cap.tensor(layer)
    dim = layouts.of(acts) if acts.dim() == 4 else 1  # this call's output, as it was computed
    grid = _checked_map(model, x, layer, acts, dim, output)
    t = resolve_target(target, logits)
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        selected = logits.gather(1, t[:, None]).sum()
    grads = None
    if selected.requires_grad:
        (grads,) = gradients(selected, [acts])  # a reentrant checkpoint after the layer too
    if grads is None:
        _last_call_only(layer, base, call, len(order.calls))
        found = _recomputed_gradients(run, x, base, t, output)
        if found is None or found[1] is None:  # (A, None): autograd reached no gradient
            raise ExplainError(
                f"the logits do not depend on layer {layer!r} through autograd (or only "
                f"through {NO_BACKWARD}); choose another layer"
            )
        acts, grads = found
    if grid is not None:
        acts, grads = as_map(acts, grid), as_map(grads, grid)
    acts, grads = acts.movedim(dim, 1), grads.movedim(dim, 1)  # (B, h, w, K) -> (B, K, h, w)
    return acts.detach(), grads, t


def _checked_map(
    model: nn.Module, x: Tensor, layer: str, acts: Tensor, dim: int, output: OutputSelector
) -> Grid | None:
    """The patch grid of a ViT's tokens (B, N, C), read as the map of its patches
    (`token_grid`); None for a (B, C, H, W) map, or a 4-D one whose channels are on `dim`
    (a ConvNeXt block's (B, H, W, C) between permutes: 3), read as acts.movedim(dim, 1);
    ExplainError for anything else."""
    if is_tokens(acts, len(x)):
        return token_grid(model, x, layer, output)
    # rows per window, not per image (a Swin window attention's): a map per row was returned
    if not is_spatial(tuple(acts.movedim(dim, 1).shape)) or len(acts) != len(x) or dim == 0:
        spatial = ", ".join(spatial_calls(model, x, output)) or "(none)"
        raise ExplainError(
            f"layer {layer!r} has output shape {tuple(acts.shape)} for {len(x)} images, not a "
            f"spatial map (B, C, H, W) with H·W > 1; Grad-CAM needs one of: {spatial}"
        )
    return None


def _last_call_only(layer: str, base: str, call: int, made: int) -> None:
    """ExplainError for a call of `base` (called `made` times) but its last: the backward's
    recomputation of a reentrant checkpoint calls the module again, where the forward's
    calls are not told apart, and the first gradient it delivers is its last call's."""
    if call != made:
        raise ExplainError(
            f"layer {layer!r} is call {call} of {made} of {base!r}, computed without autograd "
            "(a reentrant activation checkpoint), whose gradient is read only where the "
            f"backward recomputes it: for its last call, {call_label(base, made)!r}; choose "
            "that call or a layer outside the checkpoint"
        )


def _recomputed_gradients(
    run: nn.Module, x: Tensor, layer: str, t: Tensor, output: OutputSelector
) -> tuple[Tensor, Tensor] | None:
    """(A, ∂ logit_t/∂A) from a forward with autograd from the input on: a reentrant
    checkpoint around the layer then has an input that requires grad, its backward recomputes
    the block, and the layer's hook, still on, reads the recomputed output and its gradient
    (the same values: eval mode, the forward's RNG state). None: the logits do not depend
    on the layer; ExplainError where the forward computes the layer without autograd (a
    frozen backbone run under torch.no_grad(): the default layer then, a map inside it)."""
    x = x.detach().requires_grad_(True)
    with Capture(run, [layer], grads=True) as cap, torch.enable_grad():
        selected = forward(run, x, output).gather(1, t[:, None]).sum()
        if selected.requires_grad:
            gradients(selected, [x])  # the backward, for the hook's sake
    found = cap.gradients.get(layer)
    if found is None and layer in cap.outputs and not cap.outputs[layer].requires_grad:
        # "choose another layer" alone sent users of a torch.no_grad() backbone to try
        # layer after layer: every map of the image may lie inside it
        raise ExplainError(
            f"the logits do not depend on layer {layer!r} through autograd: the forward "
            "computes it under torch.no_grad() or after .detach(), so Grad-CAM has no "
            "gradient there; choose a layer after that cut, or freeze the layers before it "
            "with requires_grad_(False) on their parameters instead, which keeps the gradient"
        )
    return found


def scale_per_image(maps: Tensor) -> Tensor:
    """Divide each (H, W) map by its max, so it lies in [0, 1]; an all-zero map stays zero.
    (Dividing by the max, not min-max, keeps 0 meaning "no evidence".)  (B,H,W) → (B,H,W)"""
    peak = maps.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, maps / torch.where(peak > 0, peak, 1.0), 0.0)


def gradcam(
    model: nn.Module,
    x: Tensor,
    target: Target = None,
    layer: str | None = None,
    method: str = "gradcam",
    *,
    output: OutputSelector = None,
    channels_last: bool | None = None,
) -> Tensor:
    """Grad-CAM heatmaps: ReLU(Σ_k w_k A_k) at `layer`, upsampled bilinearly
    (align_corners=False) to the input size and divided by each image's max.

    x: (B, C, H, W) normalized images → (B, H, W) in [0, 1], float32 (float64 for a float64
    model), whatever dtype the layer computes in.
    target: class per image; None = the predicted class. layer: dotted module name, its first call
    for a module the forward calls more than once, `name #N` its N-th call (as the summary labels
    calls; a call past the last is refused, naming the calls); a ViT's tokens (B, N, C) read as the
    map of their h·w patches (`inspect.tokens`: the N − h·w leading ones dropped), a ConvNeXt
    block's (B, h, w, K) as (B, K, h, w). None = `inspect.default_layer`: the last map of the image,
    at its last call (`inspect.image_maps`: one per image, no padding op's output, H and W following
    the image's, H·W > 1), or a ViT's last attention's input; found by shape-only forwards (one 224²
    ResNet-18 image: 159 ms against 66 ms named; in a loop, find it once, pass it).
    method: "gradcam" (weights = spatial mean of gradients) or "gradcam++". Equals Captum's
    `LayerGradCam(model, layer).attribute(x, t, relu_attributions=True)` followed by
    `LayerAttribution.interpolate(..., interpolate_mode="bilinear")` and the same scaling
    (Captum's hook keeps a module's last call: for a module called more than once it equals
    `name #N` of the last call N), on `model.eval()`: the model runs in eval mode, its own
    mode restored after. A layer a later in-place op overwrites gets its own map (`Capture`).
    A batch of `inspect.fast.SMALL_BATCH` pixels or more runs on an inference copy of the model
    (BatchNorm folded into convs, channels-last layout; see `run_fast`), a smaller one on the
    model itself (channels_last None): channels_last None tries channels-last and falls back to
    the default layout for a model that `.view()`s a conv output; True / False force one layout.
    """
    if method not in WEIGHTS:
        raise ExplainError(f"unknown method {method!r}; choose one of: {', '.join(WEIGHTS)}")
    x = check_images(x)  # an inference tensor: a copy autograd can track
    needs_gradients("gradcam")
    _layer_as_target(model, target, layer)
    model, layer = unwrap_layer(model, layer)
    with preserved(model):
        if layer is None:
            layer = default_layer(model, x, output)  # a (B, C, H, W) map: its last call
        else:
            resolve_layer(model, layer)  # its layout is checked in the forward itself
        acts, grads, _ = run_fast(
            lambda run, x: layer_gradients(model, x, layer, target, output, run),
            model,
            x,
            keep=split_call(layer, dict(model.named_modules()))[0],  # hooked in the copy
            channels_last=channels_last,
        )
    # at least float32: a forward that autocasts its blocks (`with torch.autocast(...)` in
    # forward) gave bfloat16 maps, which numpy, and so every overlay, refused
    dtype = torch.promote_types(acts.dtype, torch.float32)
    acts, grads = acts.to(dtype), grads.to(dtype)
    weights = WEIGHTS[method](acts, grads)  # (B, K)
    cam = F.relu((weights[:, :, None, None] * acts).sum(1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return scale_per_image(cam[:, 0])  # (B, H, W)
