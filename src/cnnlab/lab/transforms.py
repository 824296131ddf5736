"""Image transforms the experiments measure against: whole-batch, deterministic, uint8 in/out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.data import ImageSet

# (dy, dx) unit steps: down, up, right, left
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move every image by (dy, dx) pixels (down/right positive), filling with zeros:
    `(N, C, H, W)` -> same shape. Fashion-MNIST's background is 0, so nothing is invented."""
    n, c, h, w = images.shape
    p = max(abs(dy), abs(dx))
    if p == 0:
        return images
    padded = F.pad(images, (p, p, p, p))  # (N, C, H + 2p, W + 2p), zeros
    return padded[:, :, p - dy : p - dy + h, p - dx : p - dx + w].contiguous()


def shift_each(images: torch.Tensor, pixels: int, seed: int) -> torch.Tensor:
    """Move each image by `pixels` in one of the four DIRECTIONS, drawn per image (seeded)."""
    choice = torch.randint(0, 4, (len(images),), generator=torch.Generator().manual_seed(seed))
    out = images.clone()
    for k, (dy, dx) in enumerate(DIRECTIONS):
        chosen = choice == k
        out[chosen] = shift(images[chosen], dy * pixels, dx * pixels)
    return out


def permute_pixels(ds: ImageSet, order: torch.Tensor) -> ImageSet:
    """`ds` with every image's pixels rearranged by the same `order` (a permutation of H·W)."""
    n, c, h, w = ds.images.shape
    images = ds.images.reshape(n, c, h * w)[:, :, order].reshape(n, c, h, w)  # (N, C, H, W)
    return ImageSet(images.contiguous(), ds.labels, ds.classes, f"{ds.source} [permuted]")
