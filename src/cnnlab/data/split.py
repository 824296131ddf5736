"""Train/validation split, normalization statistics, and uint8 → normalized float."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from cnnlab.data.imageset import FLOAT_SLACK, ImageSet
from cnnlab.errors import DataError


def class_quotas(counts: Sequence[int], fraction: float) -> list[int]:
    """Split `round(fraction · N)` among classes in proportion to `counts` (largest remainder).

    Every class gets `floor(fraction · count)`; the remaining picks go to the classes with the
    largest fractional parts (ties: lower class index), so the total is exact and stratified,
    except that no pick takes a class's last image: a class of one image keeps it (the rest
    then go to the next remainders, and the total falls short only when no class has room).
    """
    target = math.floor(fraction * sum(counts) + 0.5)
    exact = [fraction * k for k in counts]
    quotas = [math.floor(q) for q in exact]
    by_remainder = sorted(range(len(counts)), key=lambda c: (quotas[c] - exact[c], c))
    with_room = [c for c in by_remainder if quotas[c] + 1 < counts[c]]
    for c in with_room[: target - sum(quotas)]:
        quotas[c] += 1
    return quotas


def train_val_split(
    ds: ImageSet, val_fraction: float = 0.1, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Seeded stratified split: `round(val_fraction · N)` images go to validation, each class
    contributing in proportion to its size and keeping at least one training image
    (`class_quotas`), chosen by a seeded shuffle.

    The split is a pure function of (labels, val_fraction, seed); both parts keep the original
    order of the images they hold.
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    gen = torch.Generator().manual_seed(seed)
    is_val = torch.zeros(len(ds), dtype=torch.bool)
    for c, k in enumerate(class_quotas(ds.class_counts(), val_fraction)):
        members = torch.nonzero(ds.labels == c).flatten()
        is_val[members[torch.randperm(len(members), generator=gen)[:k]]] = True
    if val_fraction > 0 and not is_val.any():
        # a class's last image stays for training: with one image per class no fraction
        # holds any out, so raising val_fraction cannot help there
        fix = (
            "raise val_fraction or use more data"
            if max(ds.class_counts(), default=0) > 1
            else "no class has a second image to hold out: use val_fraction 0 (no "
            "validation) or more images per class"
        )
        raise DataError(
            f"{ds.source}: val_fraction={val_fraction} of {len(ds)} images leaves no "
            f"validation image; {fix}"
        )
    return (
        ds.subset(~is_val, f"{ds.source} [train split, seed {seed}]"),
        ds.subset(is_val, f"{ds.source} [val split, seed {seed}]"),
    )


def normalization_stats(ds: ImageSet | torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of the images in [0, 1] units.

    Computed exactly from a 256-bin histogram of each channel's uint8 values (no float copy of
    the data set): mean = Σ v·n_v / N, var = Σ v²·n_v / N − mean². Compute it on the training
    split only and store it with the run.
    """
    images = ds.images if isinstance(ds, ImageSet) else ds
    if images.dtype != torch.uint8 or images.dim() != 4 or images.numel() == 0:
        raise DataError("normalization_stats needs non-empty uint8 images (N, C, H, W)")
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * values**2).sum() / total - mean**2
        means.append(float(mean))
        stds.append(float(var.clamp_min(0).sqrt()))
    return tuple(means), tuple(stds)


def to_float(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """`(x / 255 − mean) / std` per channel: `(N, C, H, W)` uint8 → float32, same shape.

    Integer input of any dtype is pixels in 0..255, as uint8 is (int64 from torch.tensor of
    a list too); float input is taken to be in [0, 1] already and is only standardized.

    A std of 0 (a constant channel) divides by 1 instead, so the channel becomes 0, not NaN.
    """
    if images.dim() != 4 or images.shape[1] != len(mean) or len(mean) != len(std):
        raise DataError(
            f"to_float: images {tuple(images.shape)} need one mean and std per channel, "
            f"got {len(mean)} and {len(std)}"
        )
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.where(s > 0, s, torch.ones_like(s))
    x = images.to(torch.float32, copy=True)  # a copy: the caller's tensor is never changed
    if not images.is_floating_point():  # int64 0..255 (torch.tensor of a list) is pixels too
        x.div_(255)
    return x.sub_(m).div_(s)


def pixel_batch(images: Any, shape: Sequence[int]) -> torch.Tensor:
    """`images` as the `(N, C, H, W)` batch `to_float` takes for a model trained on `shape`
    (C, H, W): one image `(C, H, W)` becomes a batch of one. DataError, naming the fix, for
    what would become inputs the model never saw without an error from torch: another
    (C, H, W) (a GAP head runs 8x8 digits in a 28x28 run, at chance), channels last
    (NumPy's and PIL's (H, W, C)), float pixels outside [0, 1] (0..255 floats, or images
    already normalized, which would be scaled a second time), integers outside 0..255."""
    images = _as_tensor(images)
    c, h, w = shape
    if images.dim() == 3 and tuple(images.shape[1:]) == (h, w) and images.shape[0] != c:
        raise DataError(
            f"images {tuple(images.shape)} are a batch of gray images (N, H, W); the model "
            f"takes (N, C, H, W) with (C, H, W) = {tuple(shape)}: images.unsqueeze(1)"
        )
    given = tuple(images.shape)  # the message names the shape the caller passed
    if images.dim() == 3:
        images = images.unsqueeze(0)  # one image (C, H, W) -> (1, C, H, W)
    if images.dim() == 4 and tuple(images.shape[1:]) == (h, w, c) != (c, h, w):
        raise DataError(
            f"images {given} are laid out channels last (H, W, C); the model "
            f"takes (C, H, W) = {tuple(shape)}: images.permute(0, 3, 1, 2) (one image: "
            "image.permute(2, 0, 1))"
        )
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise DataError(
            f"images {given} are not of the input shape (C, H, W) = "
            f"{tuple(shape)} the model was trained on{_layout_hint(given, c)}: load them at "
            f"that size, e.g. "
            f"load_dataset(name, split, channels={c}, size=({h}, {w})) or run.dataset(split)"
        )
    _check_range(images)
    return images


def _layout_hint(given: tuple[int, ...], c: int) -> str:
    """What else a shape that fits no (C, H, W) may be: one gray image (H, W), or, when its
    first dim is not the run's C, a batch of gray images (N, H, W)."""
    if len(given) == 2 and c == 1:
        return " (one gray image (H, W): image[None, None])"
    if len(given) == 3 and given[0] != c:
        return " (a batch of gray images (N, H, W): images.unsqueeze(1))"
    return ""


def _as_tensor(images: Any) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images
    if hasattr(images, "__array__"):
        fix = "torch.from_numpy(images)"
    elif isinstance(images, list | tuple):
        fix = "torch.stack(images) of (C, H, W) tensors"
    else:
        fix = "a uint8 tensor (N, C, H, W)"
    raise DataError(f"images must be a torch tensor, got a {type(images).__name__}: pass {fix}")


def _check_range(images: torch.Tensor) -> None:
    """Floats are pixels in [0, 1], integers in 0..255 (as uint8). Floats may stray
    `FLOAT_SLACK` outside [0, 1], as bicubic resizing overshoots at hard edges; 0..255 floats
    and normalized images (whose maximum is 2 to 3 for MNIST, Fashion-MNIST, ImageNet
    statistics) stray further."""
    if images.dtype == torch.bool or images.is_complex():
        raise DataError(f"images must be uint8 pixels or floats in [0, 1], got {images.dtype}")
    if not images.numel() or images.dtype == torch.uint8:
        return
    lo, hi = (float(v) for v in images.aminmax())
    if images.is_floating_point() and (lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK):
        raise DataError(
            f"float images are read as pixels in [0, 1], these span [{lo:.3g}, {hi:.3g}]: "
            "pass uint8 (0..255), divide by 255, or give already-normalized inputs to the "
            "model directly"
        )
    if not images.is_floating_point() and (lo < 0 or hi > 255):
        raise DataError(
            f"{images.dtype} images are read as pixels in 0..255, these span {lo:g}..{hi:g}: "
            "scale them to 0..255 (uint8)"
        )
