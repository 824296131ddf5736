"""`ImageSet`: a labelled set of uint8 images held in one tensor, and `conform` (channels, size).

Every data source (IDX, image folder, digits, shapes) returns an `ImageSet`, so everything after
loading (split, statistics, loader) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from cnnlab.errors import DataError

# ITU-R 601-2 luma, the weights Pillow's convert("L") uses, so tensors and files agree.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True, eq=False)  # eq on tensors is ambiguous: compare .images yourself
class ImageSet:
    """Images `(N, C, H, W)` uint8 in 0..255, labels `(N,)` int64 in `0..len(classes)-1`.

    `source` says where the images came from (a path or a generator with its seed).
    `skipped` lists `(path, reason)` of files a folder loader could not read; `converted` lists
    `(path, "RGBA->L")` of files whose channels or size were changed to fit. `loaded_as` is
    the name (`digits`) or absolute directory `load_dataset` read the set from (None for one
    made otherwise): training records it, so a run trained on `load_splits(...)` in Python
    reopens its data, and flips images, as one trained with `--data` (it recorded the source
    text, which no command could load, and flipped digits).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    skipped: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    converted: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    loaded_as: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise DataError(
                f"{self.source}: images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
            raise DataError(
                f"{self.source}: labels must be int64 (N,) with N={len(x)}, "
                f"got {y.dtype} {tuple(y.shape)}"
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
            raise DataError(
                f"{self.source}: labels span {int(y.min())}..{int(y.max())} "
                f"but there are {len(self.classes)} classes"
            )
        object.__setattr__(self, "classes", tuple(self.classes))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """`(C, H, W)` of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, index: torch.Tensor, source: str | None = None) -> ImageSet:
        """The images at `index` (an int64 index tensor or a bool mask), same classes."""
        return ImageSet(self.images[index], self.labels[index], self.classes, source or self.source)

    def class_counts(self) -> list[int]:
        """Number of images of each class, in class order."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"ImageSet({len(self)} images {c}×{h}×{w}, {len(self.classes)} classes, "
            f"source={self.source!r})"
        )


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise DataError(f"size must be positive, got {size}")
    return h, w


def resize_crop(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize so the image covers `size`, then center-crop to it; `(N,C,H,W)` uint8 → uint8.

    The resize policy of cnnlab everywhere (tensors and image folders): scale by
    `max(H'/H, W'/W)` (antialiased bilinear) so the aspect ratio is kept and nothing is
    stretched, then cut the centered `H'×W'` window. For a square target this is "shorter side
    to `size`, then center-crop", the usual evaluation transform for ImageNet-style models.
    """
    th, tw = _size_pair(size)
    n, c, h, w = images.shape
    if (h, w) == (th, tw):
        return images
    scale = max(th / h, tw / w)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    out = images
    if (rh, rw) != (h, w):
        out = F.interpolate(
            images.float(), size=(rh, rw), mode="bilinear", antialias=True, align_corners=False
        )
        out = out.round_().clamp_(0, 255).to(torch.uint8)  # (N, C, rh, rw)
    top, left = (rh - th) // 2, (rw - tw) // 2
    return out[:, :, top : top + th, left : left + tw].contiguous()  # (N, C, th, tw)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """1 → 3 repeats the gray channel; 3 → 1 is ITU-R 601-2 luma (as Pillow's `L`); uint8."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor(_LUMA).view(1, 3, 1, 1)
        gray = (images.float() * weights).sum(1, keepdim=True)  # (N, 1, H, W)
        return gray.round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"cannot convert {c}-channel images to {channels} channels (use 1 or 3)")


def conform(
    ds: ImageSet, channels: int | None = None, size: int | tuple[int, int] | None = None
) -> ImageSet:
    """`ds` with its images converted to `channels` and resized (`resize_crop`) to `size`."""
    images = ds.images
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None:
        images = resize_crop(images, size)
    if images is ds.images:
        return ds
    return replace(ds, images=images)
