"""Small data sets that need no download: scikit-learn's 8×8 digits and generated shapes."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.errors import DataError

DIGIT_CLASSES = tuple(str(d) for d in range(10))
SHAPE_CLASSES = ("square", "circle", "triangle", "cross")
DIGITS_TEST_FRACTION = 0.2
_SPLITS = ("train", "test")


def _check_split(split: str, name: str) -> int:
    if split not in _SPLITS:
        raise DataError(f"unknown split {split!r} for {name}; use 'train' or 'test'")
    return _SPLITS.index(split)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Bool mask choosing `round(fraction * count)` items of every class, by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(fraction * len(members)))
        mask[rng.permutation(members)[:k]] = True
    return mask


def digits(split: str = "train") -> ImageSet:
    """scikit-learn's bundled UCI digits: 1,797 images (N, 1, 8, 8), classes "0".."9".

    Pixel counts 0..16 are scaled to 0..255 (`round(v * 255 / 16)`). The split is fixed: a
    stratified 20% test hold-out drawn with seed 0 (1,438 train / 359 test).
    """
    is_test = _check_split(split, "digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # scikit-learn is a dev dependency, not a core one
        raise DataError("the digits data set needs scikit-learn: pip install scikit-learn") from e
    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8)
    labels = bunch.target.astype(np.int64)
    keep = stratified_holdout(labels, DIGITS_TEST_FRACTION, seed=0) == bool(is_test)
    return ImageSet(
        torch.from_numpy(images[keep]).unsqueeze(1),  # (N, 1, 8, 8)
        torch.from_numpy(labels[keep]),
        DIGIT_CLASSES,
        f"sklearn digits ({split})",
    )


def draw_shapes(kinds: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one filled shape per image at a random position and size: `(N, size, size)` uint8.

    Half-size r is uniform in [0.2, 0.42]·size (at least 2 px), the center such that the shape
    fits; brightness uniform in 128..255 on a black background with faint noise (0..31).
    Kinds index `SHAPE_CLASSES`: square |dx|,|dy| ≤ r; circle dx²+dy² ≤ r²; upward triangle
    of base 2r and height 2r; plus-shaped cross of arm half-width r/3.
    """
    n = len(kinds)
    r = rng.uniform(0.2, 0.42, n) * size
    r = np.maximum(r, 2.0)
    cy = rng.uniform(r, size - 1 - r)
    cx = rng.uniform(r, size - 1 - r)
    grid = np.arange(size, dtype=np.float32)
    dy = grid[None, :, None] - cy[:, None, None]  # (N, size, 1)
    dx = grid[None, None, :] - cx[:, None, None]  # (N, 1, size)
    rr = r[:, None, None]
    square = (np.abs(dx) <= rr) & (np.abs(dy) <= rr)
    circle = dx**2 + dy**2 <= rr**2
    # apex at dy = -r, base at dy = +r; half-width grows linearly from 0 to r
    triangle = (np.abs(dy) <= rr) & (np.abs(dx) <= (dy + rr) / 2)
    arm = rr / 3
    cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= rr)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= rr))
    masks = np.stack([square, circle, triangle, cross])[kinds, np.arange(n)]  # (N, size, size)
    brightness = rng.integers(128, 256, n).astype(np.uint8)
    noise = rng.integers(0, 32, (n, size, size)).astype(np.uint8)
    return np.where(masks, brightness[:, None, None], noise)


def shapes(split: str = "train", n: int | None = None, size: int = 32, seed: int = 0) -> ImageSet:
    """Generated shapes (N, 1, size, size), classes square, circle, triangle, cross, balanced.

    `n` defaults to 4,000 (train) / 1,000 (test). Train and test come from different random
    streams of the same `seed` (`default_rng([seed, split_index])`), so they never coincide.
    """
    index = _check_split(split, "shapes")
    n = (4000, 1000)[index] if n is None else int(n)
    if n < 1 or size < 8:
        raise DataError(f"shapes needs n ≥ 1 and size ≥ 8, got n={n}, size={size}")
    rng = np.random.default_rng([seed, index])
    kinds = rng.permutation(np.arange(n) % len(SHAPE_CLASSES))
    images = draw_shapes(kinds, size, rng)
    return ImageSet(
        torch.from_numpy(images).unsqueeze(1),  # (N, 1, size, size)
        torch.from_numpy(kinds.astype(np.int64)),
        SHAPE_CLASSES,
        f"shapes(split={split!r}, n={n}, size={size}, seed={seed})",
    )
