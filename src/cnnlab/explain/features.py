"""The feature hierarchy made visible (notes §5.3): first-layer filters, feature maps, and the
PNG grids and heatmap overlays the CLI writes. A map held channels last (B, H, W, C), a
ConvNeXt block's between its permutes, is shown as the (B, C, H, W) map it is, moved where the
forward put its channels (`inspect.layouts`), never guessed from its sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from cnnlab.errors import ExplainError
from cnnlab.inspect import (
    Capture,
    OutputSelector,
    check_images,
    check_values,
    first_called,
    forward,
    preserved,
    resolve_layer,
    scripted_whole,
)
from cnnlab.inspect.layouts import FollowLayouts, Layouts
from cnnlab.inspect.preserve import inner_name, unwrap, unwrap_layer


def first_conv(model: nn.Module, x: Tensor | None = None) -> str:
    """Dotted name of the first nn.Conv2d in forward order (the stem, wherever the model
    registers it). x: images the model takes, (B, C, H, W); None = zeros (1, C, 64, 64) for
    each C among the convs' in_channels (then 1 and 3) until one reaches a conv."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ExplainError(
            "the model has no nn.Conv2d layer whose filters could be shown" + scripted_whole(model)
        )
    if x is not None:
        trials = [check_images(x)[:1]]
    else:
        channels = dict.fromkeys([*(m.in_channels for m in convs), 1, 3])
        trials = [torch.zeros(1, c, 64, 64, device=convs[0].weight.device) for c in channels]
    for trial in trials:
        try:
            name = first_called(model, nn.Conv2d, trial)
        except Exception:  # the model does not take this trial input: try the next one
            continue
        if name is None:
            raise ExplainError(
                "the model's forward calls no nn.Conv2d module; pass layer= to choose one"
            )
        return name
    raise ExplainError(
        "cannot find the first conv layer in forward order: the model does not run on the "
        f"trial input(s) {[tuple(t.shape) for t in trials]}; pass x= (images it takes) or layer="
    )


def filters(model: nn.Module, layer: str | None = None, *, x: Tensor | None = None) -> Tensor:
    """A conv layer's kernels as images, each filter min-max scaled to [0, 1] on its own.

    layer: dotted name of an nn.Conv2d; None = the first Conv2d in forward order (the one the
    images meet first; see `first_conv`, which x, images the model takes, helps find).
    Returns (F, C, kh, kw) in [0, 1] (a constant filter becomes 0.5), ready for `save_grid`
    when C is 1 (grey) or 3 (RGB); for other C show e.g. the channel mean, `f.mean(1, True)`.
    """
    # `features.3` of a wrapped model; a meta model has no kernels to show
    model, layer = unwrap_layer(model, layer)
    check_values(model)
    layer = first_conv(model, x) if layer is None else layer
    conv = resolve_layer(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ExplainError(
            f"layer {layer!r} is a {type(conv).__name__}, not an nn.Conv2d; filters needs a "
            "conv layer"
        )
    w = conv.weight.detach().float().clone()  # (F, C, kh, kw)
    lo = w.amin((1, 2, 3), keepdim=True)
    span = w.amax((1, 2, 3), keepdim=True) - lo
    return torch.where(span > 0, (w - lo) / torch.where(span > 0, span, 1.0), 0.5)


def feature_maps(
    model: nn.Module, x: Tensor, layers: Sequence[str], *, output: OutputSelector = None
) -> dict[str, Tensor]:
    """{layer: its output on x} from one no-grad forward pass, in the order of `layers`.

    x: (B, C, H, W) → each value (B, C', H', W') (or (B, F) for a flat layer, (B, N, C') for
    tokens, as they are). Each map is the layer's own output, even where a later in-place op
    overwrites it in the model; a 4-D output holding its channels off dim 1 (a ConvNeXt
    block's (B, H', W', C'), found in the same forward: `FollowLayouts`) is given as
    `out.movedim(dim, 1)`, its (B, C', H', W') map. Eval mode (running BatchNorm statistics,
    no dropout), the model's own mode restored after.
    A layer is named as the summary names its calls: a module's name is its first call,
    `name #2` its second, ... (`inspect.spatial_calls` lists every call of the map layers).
    """
    check_images(x)
    if isinstance(layers, str):
        layers = [layers]
    inner = {name: inner_name(model, name) for name in layers}  # `features.3` of a wrapped model
    model = unwrap(model)
    capture = Capture(model, list(inner.values()), calls=True)
    with preserved(model), FollowLayouts() as layouts, capture as cap, torch.no_grad():
        forward(model, x, output, logits=False)
    # each call's own output, so its own layout: (B, H, W, C) -> (B, C, H, W)
    return {name: _channels_first(cap.tensor(inner[name]), layouts) for name in layers}


def _channels_first(t: Tensor, layouts: Layouts) -> Tensor:
    """A 4-D output with its channels moved to dim 1 from where `layouts` followed them (not
    from dim 0: a batch); any other as it is."""
    dim = layouts.of(t)
    return t.movedim(dim, 1) if t.dim() == 4 and dim > 1 else t


def grid(images: Tensor, nrow: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images in [0, 1] (C = 1 or 3) into one uint8 (rows, cols, 3) array.
    Each image is enlarged `scale` times (nearest), with `pad` white pixels between tiles."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ExplainError(f"grid needs images (N, 1|3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    x = images.detach().float().clamp(0, 1).expand(n, 3, h, w)
    if scale > 1:
        x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        h, w = h * scale, w * scale
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = torch.ones(3, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[:, top : top + h, left : left + w] = x[i]
    return (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_grid(
    images: Tensor, path: str | Path, nrow: int | None = None, scale: int | None = None
) -> Path:
    """Write `grid(images)` as a PNG; small images are enlarged to about 64 px a tile."""
    scale = scale or max(1, 64 // max(images.shape[-2:]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(images, nrow, scale=scale)).save(path)
    return path


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max scale each (H, W) map of (N, H, W) to [0, 1] for display, as (N, 1, H, W)."""
    lo = maps.amin((1, 2), keepdim=True)
    span = maps.amax((1, 2), keepdim=True) - lo
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, 1.0), 0.0)[:, None]


def overlay(
    image: Tensor, heat: Tensor, alpha: float = 0.5, cmap: str = "jet", *, scale: bool = False
) -> Tensor:
    """A heatmap over an image: (1|3, H, W) or (H, W) in [0, 1] (integers: 0..255; floats
    outside [0, 1], a normalised model input: min-max scaled) and (H, W) in [0, 1] (any
    map >= 0 with scale=True) → (3, H, W); a batch, (B, 1|3, H, W) and (B, H, W) as gradcam
    gives, → (B, 3, H, W).

    The map's values are drawn as given (default): 0 at the bottom of the colour scale, 1
    at the top, so a map in [0, 1] that means its values (gradcam's, whose max is 1, a
    probability) keeps them. A saliency or SmoothGrad map is in range but unscaled (its max
    0.08-0.17): drawn as given it sits at the bottom. scale=True draws each map as
    heat / heat.max() (a map of zeros as given), as `cnnlab explain` draws every method."""
    from matplotlib import colormaps

    _tensor("image", image), _tensor("heat", heat)
    if image.dim() in (3, 4) and image.shape[-3] not in (1, 3) and image.shape[-1] in (1, 3):
        order = "2, 0, 1" if image.dim() == 3 else "0, 3, 1, 2"
        raise ExplainError(
            f"overlay needs channels first, (1|3, H, W) or (B, 1|3, H, W); got "
            f"{tuple(image.shape)}, channels last: give image.permute({order})"
        )
    if image.dim() == 4:
        if heat.dim() != 3 or len(heat) != len(image):
            raise ExplainError(
                f"overlay of a batch of {len(image)} images needs {len(image)} heatmaps "
                f"({len(image)}, H, W), as gradcam gives; got {tuple(heat.shape)}"
            )
        pairs = zip(image, heat, strict=True)
        return torch.stack([overlay(i, h, alpha, cmap, scale=scale) for i, h in pairs])
    if image.dim() not in (2, 3) or image.dim() == 3 and image.shape[0] not in (1, 3):
        raise ExplainError(
            f"overlay needs an image (1|3, H, W) or (H, W), got {tuple(image.shape)}"
        )
    if heat.shape != image.shape[-2:]:
        raise ExplainError(
            f"overlay needs a heatmap of the image's size {tuple(image.shape[-2:])}, got "
            f"{tuple(heat.shape)}"
        )
    if not image.is_floating_point():  # integer pixels are 8-bit values, 0..255
        image = image.float() / 255.0
    image, heat = _displayed(image), _checked_heat(heat, scale)
    colours = colormaps[cmap](heat.numpy())[..., :3]  # (H, W, 3)
    coloured = torch.from_numpy(colours).permute(2, 0, 1).float()
    base = image.expand(3, *image.shape[-2:])
    return (1 - alpha) * base + alpha * coloured


def _tensor(what: str, value) -> None:
    """ExplainError unless value is a torch.Tensor, naming the conversion: an image or map
    from NumPy (matplotlib's) raised AttributeError 'numpy.ndarray' object has no attribute
    'dim'."""
    if not isinstance(value, Tensor):
        fix = f": pass torch.from_numpy({what})" if hasattr(value, "__array__") else ""
        raise ExplainError(
            f"overlay's {what} must be a torch.Tensor, got {type(value).__name__}{fix}"
        )


def _displayed(image: Tensor) -> Tensor:
    """A float image as overlay draws it: as given inside [0, 1]; else (the normalised input
    a model is given, -0.94..2.14 for a digits run) min-max scaled to [0, 1] over the whole
    image, which gives a single-channel image's pixels back, up to their own min and max,
    keeping the darks and lights a clamp to [0, 1] would flatten."""
    image = image.detach().float().cpu()
    if image.numel() == 0:
        return image
    lo, hi = image.aminmax()
    if lo >= 0 and hi <= 1:
        return image
    return (image - lo) / (hi - lo).clamp(min=1e-12)


def _checked_heat(heat: Tensor, scale: bool) -> Tensor:
    """heat as float32 on the CPU (numpy takes no bfloat16 map), divided by its max with
    `scale` (a map of zeros as given); ExplainError for values the colour scale cannot show:
    below 0 (a signed map), or above 1 unless `scale`. Each message names the call that
    draws the map."""
    heat = heat.detach().float().cpu()
    if not heat.numel():
        return heat
    lo, hi = (v.item() for v in heat.aminmax())  # one pass; a NaN makes both NaN
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ExplainError("overlay needs a finite heatmap, got NaN or infinite values")
    if lo >= 0 and scale:
        return heat / hi if hi > 0 else heat  # the top of the colour scale where it peaks
    if lo >= 0 and hi <= 1:
        return heat
    fix = (
        "draw its magnitude, overlay(image, heat.abs(), scale=True), or its positive part, "
        "heat.clamp(min=0)"
        if lo < 0
        else "give scale=True to draw it as heat / heat.max()"
    )
    needs = "a heatmap >= 0," if scale else "a heatmap in [0, 1], as gradcam gives,"
    raise ExplainError(f"overlay needs {needs} got values from {lo:.3g} to {hi:.3g}; {fix}")
