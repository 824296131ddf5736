"""Evaluation and prediction: accuracy, per-class accuracy, confusion matrix; softmax top-k.

Test-time augmentation (`tta=True`) averages the logits of each image and its mirror image
(airbench's flip TTA): the model sees two views, one of which it was trained on by flipping.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ImageSet, read_images_sized
from cnnlab.data.imageset import check_scored_as
from cnnlab.design.spec import shapes
from cnnlab.errors import DataError
from cnnlab.inspect.progress import Progress, batch_count

if TYPE_CHECKING:
    from cnnlab.train.rundir import Run


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 256,
    tta: bool = False,
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
    tta_shift: int = 0,
    tta_flip: bool = True,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Logits of normalized images `(N, C, H, W)` -> `(N, classes)` float32, in eval mode.

    tta: mean of the logits of x and of x mirrored left-right. tta_shift s > 0 (with tta):
    also of x moved by s pixels up, down, left and right (reflect-padded, as training's
    pad-and-crop), each with its mirror: 10 views. tta_flip False (a run trained without
    flips, e.g. digits, whose classes a mirror changes): no mirrored views. The model's mode
    is restored. progress: called as progress(batches done, batches, "evaluating"), first
    with 0 done.
    """
    was_training = model.training
    model.eval()
    device = images.device
    chunks, total = [], batch_count(images, batch_size)
    if progress is not None:
        progress(0, total, "evaluating")
    try:
        for start in range(0, len(images), batch_size):
            # a copy: a model that changes its input in place (x.mul_(...)) would otherwise
            # change the caller's images, and every later evaluation of them (a batch's copy
            # costs well under 1 % of its forward)
            x = images[start : start + batch_size].clone()  # (B, C, H, W)
            views = tta_views(x, tta_shift, flip=tta_flip) if tta else [x]
            if channels_last:  # each view: crops and flips of a channels-last x are neither
                # (10 views of 10k images: 25 s strided, 9 s channels-last, on 2 cores)
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            with torch.autocast(
                device.type, dtype=autocast or torch.float32, enabled=bool(autocast)
            ):
                logits = sum(model(v).float() for v in views) / len(views)
            chunks.append(logits)
            if progress is not None:
                progress(len(chunks), total, "evaluating")
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def tta_label(config: dict[str, Any]) -> str:
    """The views `evaluate(tta=True)` averages for a run of this config.json, as it reads
    them: "flip", "flip + 2-px shift", "2-px shift" or "" (none: digits train without flips).
    What train, eval and the report call the TTA accuracy."""
    shift = int(config.get("tta_shift", 0))
    views = ["flip"] if config.get("flip") is not False else []
    return " + ".join(views + ([f"{shift}-px shift"] if shift else []))


def tta_views(x: torch.Tensor, shift: int = 0, flip: bool = True) -> list[torch.Tensor]:
    """x (B, C, H, W) and its mirror image; with shift s > 0 also the four s-pixel moves of
    each (reflect padding fills the edge they uncover): 2 or 10 views of x's shape (1 or 5
    without the mirror images, flip=False)."""
    views = [x]
    if shift > 0:
        h, w = x.shape[-2:]
        padded = F.pad(x, (shift,) * 4, mode="reflect")  # (B, C, H + 2s, W + 2s)
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            top, left = shift + dy, shift + dx
            views.append(padded[:, :, top : top + h, left : left + w])
    return views + [v.flip(-1) for v in views] if flip else views


def evaluate_tensors(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs: Any
) -> tuple[float, float, int]:
    """(cross-entropy sum, number correct, number of images) of normalized `images`.

    Keyword arguments go to `predict_logits` (batch_size, tta, autocast, channels_last).
    """
    if len(images) == 0:
        return 0.0, 0.0, 0
    logits = predict_logits(model, images, **kwargs)  # (N, classes)
    loss = F.cross_entropy(logits, labels, reduction="sum").item()
    correct = (logits.argmax(1) == labels).sum().item()
    return loss, float(correct), len(labels)


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a run on a split; confusion[i][j] counts true class i predicted as j."""

    split: str
    tta: bool
    classes: tuple[str, ...]
    n: int
    accuracy: float
    loss: float
    per_class: tuple[float | None, ...]  # None: no image of the class in the split
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "tta": self.tta,
            "n": self.n,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "per_class": dict(zip(self.classes, self.per_class, strict=True)),
            "classes": list(self.classes),
            "confusion": [list(row) for row in self.confusion],
        }


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """`(k, k)` int64 counts: row = true class, column = predicted class."""
    return torch.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def class_accuracy(confusion: torch.Tensor) -> tuple[float | None, ...]:
    """Each class's accuracy from a confusion matrix; None for a class with no image in the
    split (a folder's class too small for the hold-out): 0/0 is no accuracy, and 0.0 would
    read as a class never recognised."""
    totals = confusion.sum(1)
    accuracy = (confusion.diagonal() / totals.clamp_min(1)).tolist()
    return tuple(a if n else None for a, n in zip(accuracy, totals.tolist(), strict=True))


def evaluate(
    run: Run,
    split: str | ImageSet = "test",
    *,
    tta: bool = False,
    progress: Progress | None = None,
) -> Evaluation:
    """Accuracy, per-class accuracy and confusion matrix of `run` on its data's `split`
    ("train" | "test"), or on an ImageSet of the run's classes and input shape (images the
    run's data does not hold: a run trained on ImageSets records none it can read again).
    tta: the run's own test-time augmentation (flips, and its tta_shift moves if it set one).
    progress: an image folder's reading (file by file), then per batch (`predict_logits`)."""
    ds = run.dataset(split, progress=progress) if isinstance(split, str) else fitting(run, split)
    split = split if isinstance(split, str) else ds.source
    x = run.preprocess(ds.images)  # (N, C, H, W) normalized
    shift, flip = int(run.config.get("tta_shift", 0)), run.config.get("flip") is not False
    logits = predict_logits(
        run.model,
        x,
        tta=tta,
        autocast=run.autocast,
        tta_shift=shift,
        tta_flip=flip,
        progress=progress,
    )
    predicted = logits.argmax(1)
    k = len(run.classes)
    confusion = confusion_matrix(predicted, ds.labels, k)
    return Evaluation(
        split=split,
        tta=tta,
        classes=tuple(run.classes),
        n=len(ds),
        accuracy=(predicted == ds.labels).float().mean().item(),
        loss=F.cross_entropy(logits, ds.labels).item(),
        per_class=class_accuracy(confusion),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
    )


def fitting(run: Run, ds: Any) -> ImageSet:
    """`ds` if it is an ImageSet the run can score: its classes in the run's order (a label
    is an index into them) and the run's input shape; else DataError with the fix."""
    if not isinstance(ds, ImageSet):
        raise DataError(
            f"split must be 'train', 'test' or an ImageSet, got {type(ds).__name__}; for "
            "tensors of images and labels: ImageSet(images, labels, run.classes, 'my images')"
        )
    fix = "give the set the run's classes, in its order"
    check_scored_as(ds, run.classes, run.input_shape, ("its", "the run's"), fix, "images")
    return ds


# --- prediction on image files -----------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image file: `top` is ((class name, probability), ...); `size`
    the file's (H, W); `resized_to` the run's input (H, W) it was resized to, None when the
    file already had that size."""

    source: str
    size: tuple[int, int]
    top: tuple[tuple[str, float], ...]
    resized_to: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "size": list(self.size),
            "resized_to": list(self.resized_to) if self.resized_to else None,
            "top": [{"class": c, "probability": p} for c, p in self.top],
        }


def read_for_run(
    paths: Sequence[str | Path], shape: tuple[int, int, int]
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Image files as the run's training read its images: uint8 `(B, C, H, W)` for the run's
    input `shape` (C, H, W), and each file's own (H, W) before it was resized.

    Every command reads a file this way (predict, explain, visualize, the explorer's upload),
    so one file gives one answer: `cnnlab.data.read_images_sized` (read_image's guards, EXIF,
    alpha, 16 bits, then cover-and-centre-crop to (H, W), as the image-folder loader resizes).
    """
    c, h, w = shape
    return read_images_sized(paths, c, (h, w))


def takes_size(spec: Any, size: tuple[int, int]) -> bool:
    """True when the spec runs on `size` (H, W) images with the weights of its training size.

    Decided by the spec's shape inference: the model takes the size when every flat feature
    vector (what a linear layer reads) is as long as at the training size. A flatten after a
    non-adaptive map changes length with the image (the fixed-size trap); a flatten after gap
    or an adaptive pool does not. SpecError when the image is too small for some layer.
    """
    trained = shapes(spec)
    resized = shapes(spec, (spec.input[0], *size))
    return all(a == b for a, b in zip(trained, resized, strict=True) if len(a) == 1)


def resize_note(files: Sequence[tuple[str, tuple[int, int]]], size: tuple[int, int]) -> str:
    """One sentence for the files (name, (H, W)) whose size is not the run's input `size`,
    "" when none: they were resized to it (a model that pools globally would run at any
    size, but learned its features at this one: its answers elsewhere can be confident
    nonsense)."""
    other = [(name, s) for name, s in files if tuple(s) != tuple(size)]
    if not other:
        return ""
    h, w = size
    if len(other) == 1:
        ((name, (fh, fw)),) = other
        return f"{name} is {fh}×{fw} (H×W); resized to {h}×{w}, the run's input size"
    listed = ", ".join(f"{name} {fh}×{fw}" for name, (fh, fw) in other[:3])
    more = f" and {len(other) - 3} more" if len(other) > 3 else ""
    return (
        f"{len(other)} images are not {h}×{w} (H×W: {listed}{more}); resized to {h}×{w}, "
        "the run's input size"
    )


def predict(
    run: Run,
    images: Sequence[str | Path] | str | Path,
    *,
    top: int = 5,
    progress: Progress | None = None,
    skipped: list[tuple[str, str]] | None = None,
    named: Collection[str] = (),
) -> list[Prediction]:
    """Softmax top-`top` classes for each image file (or the one file `images` names), read
    as training read its images (`read_for_run`: the run's channels, resized to its input
    size; `Prediction.resized_to` says when a file was). Predicted as `evaluate` predicts
    (the run's precision, no TTA), so an image gets the class eval counts it as.
    progress: per batch, see `predict_logits`. skipped: None, an unreadable file is a
    DataError; a list, such a file is left out and appended to it as (path, why), as a
    folder's loader skips it (DataError if none is left). named: files the user named (not
    found in a folder): one unreadable is a DataError even when `skipped` is a list, raised
    before any other file is read or any image predicted.
    """
    if isinstance(images, str | os.PathLike):  # a str is a sequence: its characters were read
        images = [images]
    _check_paths(images)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise DataError(f"top must be a whole number of classes, at least 1, got {top!r}")
    _, height, width = run.input_shape
    k = min(top, len(run.classes))
    if skipped is None:
        pixels, sizes = read_for_run(images, run.input_shape)  # (B, C, H, W) uint8
    else:
        images, pixels, sizes = _readable(images, run.input_shape, skipped, named)
    # in the precision eval scores in (the run's, bf16 if training used it): fp32 here
    # turned 1 of 1,438 training images of a bf16 run another class than eval
    logits = predict_logits(
        run.model, run.preprocess(pixels), autocast=run.autocast, progress=progress
    )
    p, idx = logits.softmax(1).topk(k)  # (B, k)
    results = []
    for path, size, q, i in zip(images, sizes, p.tolist(), idx.tolist(), strict=True):
        top_k = tuple((run.classes[j], float(v)) for v, j in zip(q, i, strict=True))
        resized = None if size == (height, width) else (height, width)
        results.append(Prediction(str(path), size, top_k, resized))
    return results


def _check_paths(images: Any) -> None:
    """DataError unless `images` is a sequence of file paths; images in memory (a PIL
    image, a tensor, an array) are told the call that predicts them."""
    if isinstance(images, Sequence) and not isinstance(images, str):
        kinds = [type(p).__name__ for p in images if not isinstance(p, str | os.PathLike)]
        if not kinds:
            return
        kind = kinds[0]
    else:
        kind = type(images).__name__
    raise DataError(
        f"predict reads image files: give a list of paths, got a {kind}; for images in memory "
        "use run.model(run.preprocess(images)).softmax(1)"
    )


def _readable(images, shape, skipped: list, named=()) -> tuple[list, torch.Tensor, list]:
    """(the files read, their pixels, their sizes), each unreadable file appended to
    `skipped` as (path, why); the `named` files are read first, one unreadable a DataError."""
    first = {str(p): read_for_run([p], shape) for p in images if str(p) in named}
    kept, pixels, sizes = [], [], []
    for path in images:
        try:
            one, (size,) = first.get(str(path)) or read_for_run([path], shape)
        except DataError as error:
            skipped.append((str(path), str(error)))
            continue
        kept.append(path)
        pixels.append(one)
        sizes.append(size)
    if not kept:
        raise DataError(f"no readable image among {len(images)} file(s): {skipped[0][1]}")
    return kept, torch.cat(pixels), sizes
