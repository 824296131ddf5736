"""Batches of (images, labels) from whatever a user holds: a tensor, an (images, labels)
pair, a data set (`ImageSet`, anything with .images and .labels), or an iterable of batches
(a DataLoader). Explain, diagnose, the report and the lab all read their data through here."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.errors import DataError, ExplainError
from cnnlab.inspect.logits import not_float


def batches(
    data: Any, batch_size: int, *, labels: bool = False
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(x, y) batches from a Tensor (N, C, H, W), an (images, labels) pair (images (N, ...),
    labels (N,)), an object with .images/.labels, or an iterable of (x, y) batches or bare x
    (a 1-item batch, as a DataLoader of a TensorDataset(x) gives, is x). y is None where no
    labels are given; labels=True: DataError there instead."""
    for x, y in _batches(data, batch_size):
        if labels and y is None:
            raise DataError(
                "these data have no labels: give (images, labels) or an iterable of (x, y) batches"
            )
        yield x, y


def first_batch(data: Any, batch_size: int = 1) -> tuple[Any, Tensor | None]:
    """(data, the images of its first batch of `batch_size`, or None where it holds none).
    An iterator's (a generator's) first batch is read and put back in front of the rest: a
    later pass over the returned data reads every batch, the first included."""
    if not isinstance(data, Iterator):
        return data, next(iter(batches(data, batch_size)), (None,))[0]
    head = next(data, None)
    if head is None:
        return data, None
    return itertools.chain([head], data), next(batches([head], batch_size))[0]


def _batches(data: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    if isinstance(data, np.ndarray):  # images as NumPy holds them, read as a pair's arrays are
        data = torch.as_tensor(data)
    if isinstance(data, Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i : i + batch_size], None
        return
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    data = _as_tensors(data)
    if _is_pair(data):
        images, labels = data
        if len(images) != len(labels):  # not two batches: a pair whose lengths differ
            raise DataError(
                f"data: {len(images)} images but {len(labels)} labels; give one label per image"
            )
        for i in range(0, len(images), batch_size):
            yield images[i : i + batch_size], labels[i : i + batch_size]
        return
    try:
        items = iter(data)
    except TypeError as error:
        raise ExplainError(
            f"data must be a Tensor (N, C, H, W), an (images, labels) pair or an iterable of "
            f"(x, y) batches, got {type(data).__name__}"
        ) from error
    for item in map(_as_tensors, items):
        if isinstance(item, tuple | list) and len(item) >= 2:
            yield item[0], item[1]
        elif isinstance(item, tuple | list) and len(item) == 1:
            yield item[0], None
        elif isinstance(item, Tensor):
            yield item, None
        else:
            keys = f" (keys {', '.join(map(repr, item))})" if isinstance(item, dict) else ""
            raise ExplainError(
                f"each batch of data must be an (x, y) pair or a Tensor x, got "
                f"{type(item).__name__}{keys}; give the batches as (images, labels) pairs"
            )


def as_pair(data: Any) -> tuple[Tensor, Tensor] | None:
    """data as the one (images, labels) pair `batches` reads it as, or None where it reads
    data otherwise (a tensor, an iterable of batches)."""
    data = _as_tensors(data)
    return (data[0], data[1]) if _is_pair(data) else None


def _is_pair(data: Any) -> bool:
    """Whether `data` is one (images (N, ...), labels) pair rather than an iterable of two
    batches: labels (M,), or of fewer dims than the images (one-hot (M, K) or (M, 1) labels
    of (N, C, H, W) images, which the functions that read labels then judge; two batches of
    images have the same dims)."""
    return (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
        and data[0].dim() >= 2
        and (data[1].dim() == 1 or 1 <= data[1].dim() < data[0].dim())
    )


def _as_tensors(item: Any) -> Any:
    """An (images, labels) pair or batch with its NumPy arrays as tensors (scikit-learn's data
    sets, a NumPy pipeline's labels), and, in a pair, labels given as a list of numbers as a
    tensor and images given as a list of same-shape tensors stacked, so that `_is_pair` reads
    it as one pair, not as two batches; anything else as given."""
    if not isinstance(item, tuple | list):
        return item
    if any(isinstance(a, np.ndarray) for a in item):
        item = type(item)(torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in item)
    if len(item) != 2 or not (_numbers(item[1]) or _is_labels(item[1])):
        return item
    images, labels = item
    if isinstance(images, list | tuple) and _same_shape_tensors(images):
        images = torch.stack(list(images))
    if isinstance(images, Tensor) and (_numbers(labels) or len(images) == len(labels)):
        return type(item)((images, torch.as_tensor(labels)))  # a count that differs: told
    return item


def _numbers(labels: Any) -> bool:
    """Whether `labels` is a non-empty list or tuple of Python or NumPy numbers."""
    return (
        isinstance(labels, list | tuple)
        and len(labels) > 0
        and all(isinstance(v, int | float | np.number) for v in labels)
    )


def _is_labels(labels: Any) -> bool:
    return isinstance(labels, Tensor) and labels.dim() == 1


def _same_shape_tensors(images: Any) -> bool:
    return (
        len(images) > 0
        and all(isinstance(t, Tensor) for t in images)
        and len({t.shape for t in images}) == 1
    )


def as_float(x: Tensor, preprocess: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Images ready for the model: preprocess(x) if given, else x, which must then be float
    images normalised as for training. Integer pixels without `preprocess` are refused, as
    every function that takes images refuses them: only the training's normalisation gives
    the model the inputs it learned on, and [0, 1] is not it."""
    if preprocess is not None:
        return preprocess(x)
    if isinstance(x, Tensor) and not x.is_floating_point():
        raise ExplainError(f"{not_float(x)}, or pass preprocess=run.preprocess to have it done")
    return x


def dtype_of(model: nn.Module) -> torch.dtype:
    """The dtype images for the model are made in: its first floating-point parameter's
    (float16 after .half(), float64 after .double()); float32 if it has none."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def device_of(model: nn.Module) -> torch.device:
    """Where the model's tensors live (its first parameter or buffer; CPU if it has none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
