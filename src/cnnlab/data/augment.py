"""Batch augmentation (airbench style): each function takes a whole batch `(B, C, H, W)` tensor
and a `torch.Generator`, draws one random parameter per image and applies them all at once with
tensor ops, never a Python loop over images. The result is a pure function of (x, generator
state). Random numbers are drawn on the generator's device and moved to `x.device`, so a CPU
generator drives CUDA batches too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.errors import DataError


def _rand(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def translate(
    x: torch.Tensor, pad: int, gen: torch.Generator, mode: str = "reflect"
) -> torch.Tensor:
    """Random translation by pad-and-crop: pad by `pad` (reflect, replicate or zeros), then cut a
    window of the original size at a per-image random offset: a shift by (dy, dx) ∈ [−pad, pad]².

    `x: (B, C, H, W)` → `(B, C, H, W)` in x's memory format. As airbench's `batch_crop`, the loop
    runs over the (2·pad+1)² offsets, not the images: each offset copies all its images at once
    (1.7-2.5× faster than one gather with per-pixel indices, batch 512, 1×28² and 3×32², 1 core).
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    if mode not in ("reflect", "replicate", "zeros"):
        raise ValueError(f"translate: mode must be 'reflect', 'replicate' or 'zeros', got {mode!r}")
    if mode == "reflect" and pad >= min(h, w):
        raise ValueError(f"translate: reflect padding {pad} needs images larger than {h}×{w}")
    padded = F.pad(x, (pad, pad, pad, pad), mode="constant" if mode == "zeros" else mode)
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=gen, device=gen.device).to(x.device)
    out = torch.empty_like(x)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            chosen = (offsets[0] == dy) & (offsets[1] == dx)  # (B,) images with this offset
            out[chosen] = padded[chosen, :, dy : dy + h, dx : dx + w]
    return out


def hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability `p`: `(B, C, H, W)` → same shape."""
    if p <= 0:
        return x
    flip = _rand(len(x), gen, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def erase_masks(
    shape: torch.Size | tuple[int, ...],
    gen: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Bool masks `(B, 1, H, W)`, one axis-aligned rectangle per chosen image (prob. `p`).

    Random erasing (Zhong et al. 2017, torchvision's defaults): area fraction uniform in `scale`,
    aspect h/w log-uniform in `ratio`, h and w clipped to the image, position uniform.
    """
    b, _, h, w = shape
    u = torch.rand(5, b, generator=gen, device=gen.device).to(device)
    area = (scale[0] + (scale[1] - scale[0]) * u[0]) * h * w
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1])
    eh = (area * aspect).sqrt().round().clamp(1, h).long()  # (B,)
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (u[2] * (h - eh + 1)).floor().long()  # uniform in 0..h-eh
    left = (u[3] * (w - ew + 1)).floor().long()
    chosen = u[4] < p
    r = torch.arange(h, device=device)[None, :]
    c = torch.arange(w, device=device)[None, :]
    in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])  # (B, H)
    in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])  # (B, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]  # (B, H, W)
    return mask[:, None]


def erase(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
) -> torch.Tensor:
    """Random erasing: set one random rectangle per image (prob. `p`) to `value` in all channels.

    `x: (B, C, H, W)` → same shape. On normalized input the default `value=0` is the data
    set's mean colour.
    """
    if p <= 0:
        return x
    mask = erase_masks(x.shape, gen, p, scale, ratio, x.device)
    return x.clone().masked_fill_(mask, value)  # clone keeps x's memory format (channels_last)


@dataclass(frozen=True)
class Augment:
    """The training augmentation as one callable `aug(x, gen) -> x`: translate, flip, erase.

    pad: translation range in pixels (0: off); pad_mode: "reflect" or "zeros";
    flip: probability of a horizontal flip (0: off; keep 0 for digits and text);
    erase: probability of random erasing (0: off).
    """

    pad: int = 2
    pad_mode: str = "reflect"
    flip: float = 0.5
    erase: float = 0.0

    def __post_init__(self) -> None:
        # Checked once here, where a CLI flag lands: `--erase 2` or `--translate -1` would
        # otherwise pass silently as "always" or "off".
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise DataError(
                f"augment: pad (translate) must be a whole number >= 0, got {self.pad!r}"
            )
        if self.pad_mode not in ("reflect", "replicate", "zeros"):
            raise DataError(
                f"augment: pad_mode must be 'reflect', 'replicate' or 'zeros', "
                f"got {self.pad_mode!r}"
            )
        for name in ("flip", "erase"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise DataError(f"augment: {name} is a probability in [0, 1], got {value!r}")

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = translate(x, self.pad, gen, self.pad_mode)
        x = hflip(x, gen, self.flip)
        return erase(x, gen, self.erase)
