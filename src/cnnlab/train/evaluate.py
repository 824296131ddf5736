"""Evaluation and prediction: accuracy, per-class accuracy, confusion matrix; softmax top-k.

Test-time augmentation (`tta=True`) averages the logits of each image and its mirror image
(airbench's flip TTA): the model sees two views, one of which it was trained on by flipping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import read_image
from cnnlab.design.spec import shapes
from cnnlab.errors import DataError, SpecError

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
) -> torch.Tensor:
    """Logits of normalized images `(N, C, H, W)` -> `(N, classes)` float32, in eval mode.

    tta: mean of the logits of x and of x mirrored left-right. tta_shift s > 0 (with tta):
    also of x moved by s pixels up, down, left and right (reflect-padded, as training's
    pad-and-crop), each with its mirror: 10 views. tta_flip False (a run trained without
    flips, e.g. digits, whose classes a mirror changes): no mirrored views. The model's mode
    is restored.
    """
    was_training = model.training
    model.eval()
    device = images.device
    chunks = []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]  # (B, C, H, W)
            views = tta_views(x, tta_shift, flip=tta_flip) if tta else [x]
            if channels_last:  # each view: crops and flips of a channels-last x are neither
                # (10 views of 10k images: 25 s strided, 9 s channels-last, on 2 cores)
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            with torch.autocast(
                device.type, dtype=autocast or torch.float32, enabled=bool(autocast)
            ):
                logits = sum(model(v).float() for v in views) / len(views)
            chunks.append(logits)
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


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
    per_class: tuple[float, ...]
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


def evaluate(run: Run, split: str = "test", *, tta: bool = False) -> Evaluation:
    """Accuracy, per-class accuracy and confusion matrix of `run` on its data's `split`.
    tta: the run's own test-time augmentation (flips, and its tta_shift moves if it set one)."""
    ds = run.dataset(split)
    x = run.preprocess(ds.images)  # (N, C, H, W) normalized
    shift, flip = int(run.config.get("tta_shift", 0)), run.config.get("flip") is not False
    logits = predict_logits(
        run.model, x, tta=tta, autocast=run.autocast, tta_shift=shift, tta_flip=flip
    )
    predicted = logits.argmax(1)
    k = len(run.classes)
    confusion = confusion_matrix(predicted, ds.labels, k)
    totals = confusion.sum(1).clamp_min(1)
    return Evaluation(
        split=split,
        tta=tta,
        classes=tuple(run.classes),
        n=len(ds),
        accuracy=(predicted == ds.labels).float().mean().item(),
        loss=F.cross_entropy(logits, ds.labels).item(),
        per_class=tuple((confusion.diagonal() / totals).tolist()),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
    )


# --- prediction on image files -----------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image: `top` is ((class name, probability), ...)."""

    source: str
    size: tuple[int, int]
    top: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "size": list(self.size),
            "top": [{"class": c, "probability": p} for c, p in self.top],
        }


def load_image(path: str | Path, channels: int) -> torch.Tensor:
    """Read an image file as uint8 `(1, channels, H, W)`, converted exactly as the image-folder
    loader converts training images (`cnnlab.data.read_image`)."""
    return read_image(path, channels).unsqueeze(0)  # (1, C, H, W)


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


def _size_error(path: str, size: tuple[int, int], need: tuple[int, int]) -> DataError:
    return DataError(
        f"{path} is {size[0]}×{size[1]} but this model only takes {need[0]}×{need[1]} images: "
        "its head flattens the last feature map into a linear layer whose weight count is "
        "fixed by that map's size (the fixed-size trap); resize the image to "
        f"{need[0]}×{need[1]}, or use a global-average-pooling (gap) head, which takes any size"
    )


def _check_size(spec, path: str, size: tuple[int, int], need: tuple[int, int]) -> None:
    """DataError when the model cannot run on `size` (too small, or a fixed-size head)."""
    try:
        fits = takes_size(spec, size)
    except SpecError as error:
        raise DataError(
            f"{path} is {size[0]}×{size[1]}, a size this model cannot take ({error}); "
            f"resize the image to {need[0]}×{need[1]}, the size it was trained on"
        ) from None
    if not fits:
        raise _size_error(path, size, need)


def predict(run: Run, images: Sequence[str | Path], *, top: int = 5) -> list[Prediction]:
    """Softmax top-`top` classes for each image file, converted to the run's channels.

    A model whose head does not depend on the map size (gap, or an adaptive pool before
    flatten) accepts any resolution; one that flattens a fixed-size map needs the training
    size and raises DataError naming it otherwise (`takes_size`). Predicted as `evaluate`
    predicts (the run's precision, no TTA), so an image gets the class eval counts it as.
    """
    channels, height, width = run.input_shape
    k = max(1, min(top, len(run.classes)))
    results = []
    for path in images:
        pixels = load_image(path, channels)  # (1, C, H, W) uint8
        size = tuple(pixels.shape[2:])
        if size != (height, width) and run.spec is not None:
            # a spec decides by shape inference; a model from code by running (below)
            _check_size(run.spec, str(path), size, (height, width))
        try:
            # in the precision eval scores in (the run's, bf16 if training used it): fp32
            # here turned 1 of 1,438 training images of a bf16 run another class than eval
            x = run.preprocess(pixels)
            logits = predict_logits(run.model, x, autocast=run.autocast)  # (1, classes)
        except RuntimeError as error:
            if size != (height, width):
                raise DataError(
                    f"{path} ({size[0]}×{size[1]}) does not fit this model, which was "
                    f"trained on {height}×{width}: {str(error).splitlines()[0]}; resize the "
                    f"image to {height}×{width}"
                ) from error
            raise
        probs = logits.softmax(1)[0]
        p, idx = probs.topk(k)
        top_k = tuple(
            (run.classes[i], float(q)) for q, i in zip(p.tolist(), idx.tolist(), strict=True)
        )
        results.append(Prediction(str(path), size, top_k))
    return results
