"""The test images that excite each channel most, computed once per run and cached.

A channel's response to an image is the largest value in its map (the strongest place: a
detector fires somewhere, not everywhere). One pass over the test split records, for every
channel of the chosen layers, the k images with the largest response. The result is written
to RUN/explorer/top_activations.json (atomically) with a key made of the weights' hash, the
model code's hash (a run from code), the data, the layers and k: a retrained model, its code
changed and accepted (CNNLAB_ACCEPT_CHANGED_CODE: the same weights through another forward)
or another data set makes a new one.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.inspect import Capture, forward, inspecting
from cnnlab.inspect.progress import Progress, batch_count
from cnnlab.train.checkpoint import MODEL_WEIGHTS, atomic_write

CACHE = Path("explorer") / "top_activations.json"
VERSION = 2  # bump when the way responses are computed changes (2: layers are calls)


def weights_hash(run_path: Path) -> str:
    """sha256 of the run's model.safetensors (the cache key's part that changes on retrain)."""
    digest = hashlib.sha256()
    with open(run_path / MODEL_WEIGHTS, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@torch.no_grad()
def top_images(
    model: nn.Module,
    images: Tensor,
    layers: list[str],
    k: int = 8,
    batch_size: int = 256,
    progress: Progress | None = None,
    dims: dict[str, int] | None = None,
) -> dict[str, dict[str, list]]:
    """{layer: {"index": (C, k), "value": (C, k)}}: per channel, the k images of `images`
    (N, C, H, W) normalized with the largest spatial max of that channel, best first.
    layers: calls' labels, as the summary labels them (`relu` a module's first call, `relu #2`
    its second: `Capture(..., calls=True)`), each ranked by that call's own maps.
    progress: progress(batches done, batches, "top images per channel") after each batch.
    dims: {layer: the dim holding its channels} where it is not 1 (`Network.dims`: a ConvNeXt
    block's (B, H, W, C) GELU), its maps read as out.movedim(dim, 1)."""
    dims = dims or {}
    peaks = {layer: partial(_peak, dim=dims.get(layer, 1)) for layer in layers}
    best: dict[str, tuple[Tensor, Tensor]] = {}
    total = batch_count(images, batch_size)
    if progress is not None:
        progress(0, total, "top images per channel")
    with inspecting(model), Capture(model, layers, transform=peaks, calls=True) as cap:
        for start in range(0, len(images), batch_size):
            forward(model, images[start : start + batch_size], logits=False)
            for layer in layers:
                score = cap.tensor(layer).float().T  # (C, B): each channel's response
                index = torch.arange(start, start + score.shape[1]).expand_as(score)
                if layer in best:
                    score = torch.cat([best[layer][0], score], 1)
                    index = torch.cat([best[layer][1], index], 1)
                top = score.topk(min(k, score.shape[1]), dim=1)
                best[layer] = (top.values, index.gather(1, top.indices))
            if progress is not None:
                progress(start // batch_size + 1, total, "top images per channel")
    return {n: {"index": i.tolist(), "value": v.tolist()} for n, (v, i) in best.items()}


def _peak(maps: Tensor, dim: int = 1) -> Tensor:
    """(B, C, H, W), its channels on `dim` -> (B, C): each channel's response, the largest
    value of its map."""
    return maps.movedim(dim, 1).amax((2, 3))


def cached_top_images(
    run_path: Path,
    model: nn.Module,
    images: Tensor,
    data: str,
    layers: list[str],
    k: int = 8,
    progress: Progress | None = None,
    code: str | None = None,
    dims: dict[str, int] | None = None,
) -> dict[str, Any]:
    """top_images, read from RUN/explorer/top_activations.json when its key matches, else
    computed and written there (progress: top_images'). code: the sha256 of the model's
    code file as it is now (None: a spec run); dims: top_images'. Returns {"key": ..., "layers":
    {layer: {index, value}}}."""
    key = {
        "version": VERSION,
        "weights": weights_hash(run_path),
        **({"code": code} if code else {}),  # a spec run's cache keeps its key
        "data": data,
        "images": len(images),
        "layers": layers,
        "k": k,
    }
    path = run_path / CACHE
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass  # no cache yet, or a broken one: compute it again
    result = {
        "key": key,
        "layers": top_images(model, images, layers, k, progress=progress, dims=dims),
    }
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, json.dumps(result).encode())
    return result
