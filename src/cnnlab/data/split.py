"""Train/validation split, normalization statistics, and uint8 → normalized float."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnnlab.data.imageset import ImageSet
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
        # holds any out, and "raise val_fraction" sent the user round in circles
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

    Float input is taken to be in [0, 1] already and is only standardized.

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
    if images.dtype == torch.uint8:
        x.div_(255)
    return x.sub_(m).div_(s)


def check_pixels(images: torch.Tensor, shape: Sequence[int]) -> None:
    """Refuse what `to_float` would turn into inputs a model was never trained on without an
    error from torch: `(N, C, H, W)` images of another (C, H, W) than `shape` (a GAP head runs
    8x8 digits in a 28x28 run, at chance) and float pixels outside [0, 1] (0..255 floats,
    or images already normalized, which would be scaled a second time)."""
    if images.dim() == 4 and tuple(images.shape[1:]) != tuple(shape):
        c, h, w = shape
        raise DataError(
            f"images {tuple(images.shape)} are not of the input shape (C, H, W) = "
            f"{tuple(shape)} the model was trained on: load them at that size, e.g. "
            f"load_dataset(name, split, channels={c}, size=({h}, {w})) or run.dataset(split)"
        )
    if images.is_floating_point() and images.numel():
        lo, hi = (float(v) for v in images.aminmax())
        if lo < 0 or hi > 1:
            raise DataError(
                f"float images are read as pixels in [0, 1], these span [{lo:.3g}, {hi:.3g}]: "
                "pass uint8 (0..255), divide by 255, or give already-normalized inputs to the "
                "model directly"
            )
