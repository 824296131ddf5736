"""`ImageSet`: a labelled set of uint8 images held in one tensor, and `conform` (channels, size).

Every data source (IDX, image folder, digits, shapes) returns an `ImageSet`, so everything after
loading (split, statistics, loader) is written once.
"""

from __future__ import annotations

import operator
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
    reopens its data, and flips images, as one trained with `--data`. `loaded_split` is the
    split it read ("train" | "test"): a run reopens the test split as unseen images, so one
    trained on a test split records its images as given in Python, which no command reads.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    skipped: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    converted: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    loaded_as: str | None = field(default=None, repr=False)
    loaded_split: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.source, os.PathLike):  # a run records it as text (config.json)
            object.__setattr__(self, "source", os.fspath(self.source))
        if not isinstance(self.source, str) or not self.source:
            raise DataError(
                f"an ImageSet's source names where its images came from, as text (e.g. "
                f"'my photos'), got {self.source!r}"
            )
        x, y = self.images, self.labels
        _check_images(x, self.source)
        _check_classes(self.classes, self.source)
        _check_labels(y, len(x), len(self.classes), self.source)
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


# A channel count training converts (1 gray, 3 RGB) or a file may hold (4: RGBA). An
# (N, H, W, C) array (NumPy's and PIL's layout) read as (N, C, H, W) has H channels and
# images C pixels wide: it would train on columns of pixels, without an error. Refused when
# it has more channels than an image file holds and is narrower than it is high.
_IMAGE_CHANNELS = (1, 3, 4)


def _check_images(x: Any, source: str) -> None:
    """DataError unless `x` is a uint8 `(N, C, H, W)` tensor, naming the conversion that
    makes the array the user has into one."""
    want = f"{source}: images must be a uint8 tensor (N, C, H, W) in 0..255"
    if not isinstance(x, torch.Tensor):
        kind = type(x).__name__
        fix = "torch.from_numpy(images)" if hasattr(x, "__array__") else "torch.as_tensor(images)"
        raise DataError(f"{want}, got a {kind}: pass {fix}")
    shape = tuple(x.shape)
    if x.dim() == 3:
        raise DataError(
            f"{want}, got {shape}: for gray images (N, H, W) add the channel dim, "
            "images.unsqueeze(1)"
        )
    if x.dim() != 4:
        raise DataError(f"{want}, got {x.dtype} {shape}")
    if shape[1] > max(_IMAGE_CHANNELS) and shape[3] in _IMAGE_CHANNELS and shape[2] > shape[3]:
        raise DataError(
            f"{want}, got {shape}, which reads as {shape[1]} channels of {shape[2]}×{shape[3]} "
            f"pixels; images laid out (N, H, W, C) (NumPy, PIL) need "
            "images.permute(0, 3, 1, 2).contiguous()"
        )
    if x.dtype != torch.uint8:
        raise DataError(f"{want}, got {x.dtype} {shape}{_uint8_fix(x)}")


# Float pixels in [0, 1] may stray this far outside it: bicubic resizing overshoots at hard
# edges (8x8 black/white digits to 28x28: -0.32..1.34), and arithmetic rounds past 1.0.
# 0..255 floats and normalized images (maximum 2 to 3 with MNIST's or ImageNet's
# statistics) stray further.
FLOAT_SLACK = 0.5


def _uint8_fix(x: torch.Tensor) -> str:
    """How images of another dtype become uint8, judged by their range: [0, 1] floats
    (within FLOAT_SLACK) are scaled by 255, and clamped where they stray outside [0, 1] (a
    plain .to(torch.uint8) makes them all 0 or 1, black; 1.2 * 255 wraps around)."""
    if x.numel() == 0 or x.dtype == torch.bool or x.is_complex():
        return ""
    low, high = float(x.min()), float(x.max())
    if x.is_floating_point() and -FLOAT_SLACK <= low and high <= 1 + FLOAT_SLACK:
        clamp = "" if 0 <= low and high <= 1 else ".clamp(0, 255)"
        return f" in [{low:.7g}, {high:.7g}]: use (images * 255).round(){clamp}.to(torch.uint8)"
    if low < 0 or high > 255:
        return f" in {low:g}..{high:g}: scale them to 0..255 first, then .round().to(torch.uint8)"
    rounded = ".round()" if x.is_floating_point() else ""
    return f" in {low:g}..{high:g}: use images{rounded}.to(torch.uint8)"


def _check_classes(classes: Any, source: str) -> None:
    """Class names: distinct strings, one per label value, as a run's config.json records
    them and its reader takes them (a name names one label)."""
    if isinstance(classes, str):  # a string is a sequence: 'cat dog' made 7 classes
        raise DataError(
            f"{source}: classes must be a list of names, one per label value, got the "
            f"string {classes!r}; e.g. classes=['cat', 'dog']"
        )
    if isinstance(classes, Mapping):  # list(d) is its keys, in insertion order, not label order
        raise DataError(
            f"{source}: classes must be a list of names in label order, got a dict; for "
            "{name: index} (class_to_idx) give sorted(d, key=d.get), for {index: name} "
            "[d[i] for i in range(len(d))]"
        )
    names = list(classes)
    if not all(isinstance(c, str) for c in names):
        raise DataError(
            f"{source}: class names must be strings, got {names[:4]!r}"
            f"{' ...' if len(names) > 4 else ''}; e.g. classes=[str(c) for c in classes]"
        )
    twice = sorted(c for c, k in Counter(names).items() if k > 1)  # one pass, not a count per name
    if twice:
        raise DataError(
            f"{source}: class names must be distinct (each names one label value), "
            f"{', '.join(map(repr, twice))} is given twice"
        )


def _check_labels(y: Any, n: int, k: int, source: str) -> None:
    """DataError unless `y` is int64 `(n,)` in 0..k-1, naming the conversion or the likely
    slip (labels counted from 1, class names for indices)."""
    want = f"{source}: labels must be an int64 tensor (N,) of class indices 0..{k - 1}, N={n}"
    if not isinstance(y, torch.Tensor):
        items = list(y) if isinstance(y, list | tuple) else []
        if items and all(isinstance(v, str) for v in items):
            fix = "names are not indices: torch.tensor([classes.index(c) for c in labels])"
        elif hasattr(y, "__array__"):
            fix = "pass torch.from_numpy(labels).long()"
        else:
            fix = "pass torch.as_tensor(labels, dtype=torch.int64)"
        raise DataError(f"{want}, got a {type(y).__name__}: {fix}")
    shape = tuple(y.shape)
    if y.dim() == 2 and shape[0] == n and shape[1] == k and k > 1:
        raise DataError(f"{want}, got {shape}, one-hot rows: use labels.argmax(1)")
    if y.dim() == 2 and shape[0] == n and shape[1] == 1:
        raise DataError(f"{want}, got {shape}: use labels.flatten()")
    if y.dim() != 1 or len(y) != n:
        raise DataError(f"{want}, got {y.dtype} {shape}")
    if y.dtype != torch.int64:
        whole = not y.is_floating_point() or bool((y == y.round()).all())
        fix = ": use labels.long()" if whole and y.dtype != torch.bool else ""
        raise DataError(f"{want}, got {y.dtype}{fix}")
    if not n:
        return
    low, high = int(y.min()), int(y.max())
    if low >= 0 and high < k:
        return
    fix = ""
    if low >= 1 and high == k:
        fix = f"; they seem to count from 1: use labels - 1 (classes in the order of 1..{k})"
    elif low < 0:
        fix = "; a negative label (often -1, unlabelled) is no class: drop those images"
    else:
        fix = f"; give one class name per label value ({high + 1} names for 0..{high})"
    raise DataError(f"{source}: labels span {low}..{high} but there are {k} classes{fix}")


def size_pair(size: Any) -> tuple[int, int]:
    """`(H, W)` of a size given as one int (square) or two; DataError naming the form
    otherwise. A model's input shape (C, H, W) given as the size is the likely slip (it
    failed in tuple unpacking), so it is named with the call that fits."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if isinstance(size, tuple | list | torch.Size) and len(size) == 3:
        c, h, w = size
        raise DataError(
            f"size is (H, W) or one int, got {tuple(size)}, an input shape (C, H, W): give "
            f"channels={c}, size=({h}, {w})"
        )
    try:
        h, w = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be one int or (H, W) of ints, got {size!r}") from None
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
    th, tw = size_pair(size)
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
    """`ds` with its images converted to `channels` and resized (`resize_crop`) to `size`;
    DataError for images not in an ImageSet, naming the functions that take a tensor."""
    if not isinstance(ds, ImageSet):
        raise DataError(
            f"conform takes an ImageSet, got a {type(ds).__name__}; for a uint8 (N, C, H, W) "
            "tensor: cnnlab.data.resize_crop(cnnlab.data.convert_channels(images, C), (H, W))"
        )
    images = ds.images
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None:
        images = resize_crop(images, size)
    if images is ds.images:
        return ds
    return replace(ds, images=images)


def check_scored_as(
    images: ImageSet,
    classes: tuple[str, ...],
    shape: tuple[int, ...],
    whose: tuple[str, str],
    fix: str,
    name: str,
) -> None:
    """DataError unless `images` can be scored as a model of `classes` and input `shape` scores:
    the same classes in the same order (a label is an index into them) and images of that
    shape. whose: (the set's, the reference's) in the message, e.g. ("its", "the run's");
    fix: how to give the classes; name: the variable conform's call names."""
    mine, theirs = whose
    if images.classes != tuple(classes):
        raise DataError(
            f"{images.source}: {mine} classes ({', '.join(images.classes)}) are not {theirs} "
            f"({', '.join(classes)}): a label is an index into them, so {fix}"
        )
    if images.shape != tuple(shape):
        c, h, w = shape
        raise DataError(
            f"{images.source}: {mine} images are {'×'.join(map(str, images.shape))}, {theirs} "
            f"{c}×{h}×{w}; convert them: cnnlab.data.conform({name}, channels={c}, size=({h}, {w}))"
        )
