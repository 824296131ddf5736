"""What each panel of the explorer shows, as JSON-ready data computed from the run.

Pure functions of tensors and the model: the web app (app.py) only routes to them. Images
travel as PNG data URLs, maps as base64 bytes (one byte per pixel, with their range), so a
page for a 224×224 model stays small; the numbers a learner reads (logits, probabilities,
the dot product) travel as plain floats.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cnnlab import geometry
from cnnlab.design.reference import softmax
from cnnlab.design.summary import summary
from cnnlab.design.summary.render import call_label as label
from cnnlab.errors import CnnlabError, SpecError
from cnnlab.explorer.probe import Network

MAX_PADDING = 64  # the playground draws every window: as bounded as its input size (≤ 64)


def png_url(pixels: Tensor) -> str:
    """uint8 (C, H, W) with C = 1 or 3 (or float in [0, 1]) -> a PNG data URL."""
    if pixels.is_floating_point():
        pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy()  # (H, W, C)
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over size: images are small
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def encode_maps(maps: Tensor) -> dict[str, Any]:
    """(N, H, W) float maps -> {n, h, w, min[n], max[n], data}: data is base64 of N·H·W bytes,
    each map min-max scaled to 0..255 on its own (a constant map is all 0)."""
    maps = maps.detach().float()
    n, h, w = maps.shape
    lo = maps.amin((1, 2), keepdim=True)
    span = maps.amax((1, 2), keepdim=True) - lo
    scaled = torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, 1.0), 0.0)
    data = (scaled * 255).round().to(torch.uint8).numpy().tobytes()
    return {
        "n": n,
        "h": h,
        "w": w,
        "min": lo.flatten().tolist(),
        "max": (lo + span).flatten().tolist(),
        "data": base64.b64encode(data).decode(),
    }


def heatmap(map_hw: Tensor) -> list[list[float]]:
    """(H, W) map -> rows of floats rounded to 4 decimals (Grad-CAM in [0, 1], saliency)."""
    return np.round(map_hw.detach().float().numpy(), 4).tolist()


def architecture(net: Network) -> dict[str, Any]:
    """The layers as a column (cnnlab.summary: output shape, parameters, receptive field),
    each lint attached to its layer, and which rows are convs one can click into. A row is
    one call of its module: `label` names it as the summary does (`name #2`), and its maps
    are that call's.

    A model the summary refuses (a TorchScript block runs its calls where no hook sees them)
    gets no rows and, as `note`, the summary's own message: the other panels read the model
    through hooks and forward passes, which still work."""
    try:
        s = summary(net.model, net.input_shape)
    except CnnlabError as err:
        total = sum(p.numel() for p in net.model.parameters())
        return {"rows": [], "total_params": total, "lints": [], "note": str(err)}
    lints: dict[str, list[dict[str, str]]] = {}
    for lint in s.warnings:
        lints.setdefault(lint.layer, []).append({"code": lint.code, "message": lint.message})
    convs = {c.conv for c in net.chains}
    rows = [
        {
            "name": r.name,
            "call": r.call,  # 2 for a module's second call (a block run twice), ...
            "label": call,
            "kind": r.kind,
            "output_shape": list(r.output_shape),
            "params": r.params,
            "receptive_field": r.receptive_field,
            "jump": r.jump,
            "conv": call in convs,
            "spatial": call in net.maps,
            "lints": lints.pop(call, []),  # a lint names a call: `crop #2` its second
        }
        for r, call in ((r, label(r.name, r.call)) for r in s.rows)
    ]
    # not tied to a row (a '(model)' lint, as rf-small): each keeps its layer, which the page
    # names (without it the page said "rf-small (undefined): ...")
    model_lints = [{"layer": layer, **lint} for layer, found in lints.items() for lint in found]
    return {"rows": rows, "total_params": s.total_params, "lints": model_lints, "note": None}


def softmax_steps(logits: Tensor, classes: tuple[str, ...], k: int = 5) -> dict[str, Any]:
    """The softmax panel (§5.5): σ(z)_i = e^{z_i} / Σ_j e^{z_j}, every number shown.

    exp is e^{z_i} itself when it fits a float64, else e^{z_i − max z} (shifted: the ratios,
    hence the probabilities, are the same) and `shifted` says so. Probabilities come from
    reference.softmax (the stable form); `top` is the k most probable classes.
    """
    z = logits.detach().double().numpy()  # (K,)
    shift = float(z.max()) if z.max() > 700 or z.min() < -700 else 0.0  # e^710 overflows
    e = np.exp(z - shift)
    p = softmax(z)
    order = np.argsort(-p, kind="stable")[: max(1, min(k, len(classes)))]
    return {
        "classes": list(classes),
        "logits": z.tolist(),
        "exp": e.tolist(),
        "sum": float(e.sum()),
        "shifted": shift,
        "probabilities": p.tolist(),
        "top": [
            {"class": classes[i], "index": int(i), "probability": float(p[i]), "logit": float(z[i])}
            for i in order
        ],
    }


def parse_padding(padding: str, kernel: int, dilation: int) -> tuple[int, int, str]:
    """'valid' -> (0, 0), 'same' -> geometry.same_padding, 'N' -> (N, N); with its name."""
    text = str(padding).strip().lower()
    if text == "valid":
        return 0, 0, "valid"
    if text == "same":
        before, after = geometry.same_padding(kernel, dilation)
        return before, after, "same"
    try:
        p = int(text)
    except ValueError:
        raise SpecError(f"padding must be 'valid', 'same' or a number, got {padding!r}") from None
    if not 0 <= p <= MAX_PADDING:
        raise SpecError(f"padding must be 0 to {MAX_PADDING}, got {p}")
    return p, p, str(p)


def playground(
    size: int,
    kernel: int,
    padding: str = "valid",
    stride: int = 1,
    dilation: int = 1,
    in_channels: int = 1,
    filters: int = 1,
) -> dict[str, Any]:
    """The geometry playground (§2.2–2.4), one axis (square images): output size by the
    formula O = ⌊(I + 2P − D(K − 1) − 1) / S⌋ + 1, every window's taps, the pixels the floor
    drops and those no window reads before them (skipped), the 'same' padding, the conv's
    parameters. All from cnnlab.geometry; SpecError (a message for the page) when the window
    does not fit."""
    before, after, name = parse_padding(padding, kernel, dilation)
    if name == "same" and stride != 1:
        raise SpecError(
            f"'same' padding keeps the size only at stride 1 (§2.3), not at stride {stride}; "
            "choose stride 1 or a number for the padding"
        )
    if before != after:  # an even 'same' kernel: PyTorch pads one more zero after
        out = geometry.conv_output_size(size + after - before, kernel, before, stride, dilation)
        dropped = 0
    else:
        out = geometry.conv_output_size(size, kernel, before, stride, dilation)
        dropped = geometry.dropped_pixels(size, kernel, before, stride, dilation)
    exact = (size + before + after - dilation * (kernel - 1) - 1) / stride + 1
    windows = [[j * stride - before + t * dilation for t in range(kernel)] for j in range(out)]
    # real pixels no window reads that the floor does not drop: between windows (a stride
    # longer than the kernel, k=1 s=2 reads 0, 2, 4 of 5) or in a dilated kernel's holes; the
    # page said "no real pixel is dropped" of them
    read = {t for w in windows for t in w}
    skipped = [i for i in range(size - dropped) if i not in read]
    return {
        "size": size,
        "kernel": kernel,
        "padding": [before, after],
        "padding_name": name,
        "stride": stride,
        "dilation": dilation,
        "output": out,
        "exact": exact,
        "floored": not math.isclose(exact, out),
        "dropped": dropped,
        "dropped_pixels": list(range(size - dropped, size)),
        "skipped_pixels": skipped,
        "windows": windows,
        "same_padding": list(geometry.same_padding(kernel, dilation)),
        "params": geometry.conv_params(kernel, in_channels, filters),
        "params_formula": f"(({kernel}·{kernel}·{in_channels}) + 1) · {filters}",
        "in_channels": in_channels,
        "filters": filters,
    }
