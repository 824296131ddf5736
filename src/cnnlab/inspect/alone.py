"""Whether a model's eval-mode answer for an image depends on the other images in its batch.

In eval mode a classifier is a function of each image alone: model(x)[0] = model(x[:1])[0].
A BatchNorm without running statistics (`track_running_stats=False`) normalizes by the
batch's own mean and variance in eval mode too, and so does one that the model's forward puts
in training mode; then `cnnlab eval` (batches of 256), `predict` (the files given together)
and `explain` or the explorer (one image) give one image different answers. So, in every
call, does a dropout left on in eval mode (`F.dropout(x, p)`, whose `training` is True unless
given). `batch_note` says which, naming the layers, from three forwards of random images.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from cnnlab.inspect.batches import device_of
from cnnlab.inspect.preserve import preserved

# Logits that move by more than this share of their largest magnitude when a second image
# joins the first: fp32 kernels given another batch size differ by ~1e-6 of it, a BatchNorm
# on batch statistics by tens of percent.
TOLERANCE = 1e-3


class Answers(NamedTuple):
    """How one image's eval-mode logits move: `batch` when a second image joins it in the
    batch, `repeat` between two forwards of it alone (a share of their largest magnitude);
    `training`: the modules in training mode after those eval-mode forwards."""

    batch: float
    repeat: float
    training: list[str]


def batch_dependence(model: nn.Module, input_shape) -> Answers:
    """The `Answers` of `model` for x two standard-normal (C, H, W) images (a fixed seed;
    the global RNG untouched): max |model(x)[0] − model(x[:1])[0]| / max |model(x)[0]|, and
    the same between two forwards of x[:1]. Model, modes and buffers are left as they were (a
    forward that trains a BatchNorm moves its statistics). All 0 where the forwards fail or
    give no finite tensor: the checks of the output (`classifier_misfit`) speak then."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_shape, generator=generator).to(device_of(model))  # (2, C, H, W)
    # train=True keeps the buffers and RNG; the forwards themselves run in eval mode
    with preserved(model, train=True), torch.no_grad():
        model.eval()
        try:
            outs = [model(x)[:1], model(x[:1]), model(x[:1])]  # (1, K) each
        except Exception:  # noqa: BLE001 - the output checks name what failed and where
            return Answers(0.0, 0.0, [])
        training = [name for name, m in model.named_modules() if m.training]
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in outs):
        return Answers(0.0, 0.0, [])
    first, one, again = (t.float() for t in outs)
    if not (first.shape == one.shape == again.shape) or not all(t.isfinite().all() for t in outs):
        return Answers(0.0, 0.0, [])
    scale = first.abs().max().clamp_min(1e-12)
    moved = (first - one).abs().max() / scale
    return Answers(float(moved), float((one - again).abs().max() / scale), training)


def batch_statistics_layers(model: nn.Module) -> list[str]:
    """The BatchNorm layers that keep no running statistics (`track_running_stats=False`):
    in eval mode they normalize each batch by its own mean and variance."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.running_mean is None
    ]


def batch_note(model: nn.Module, input_shape, title: str) -> list[str]:
    """The note of a model whose eval-mode logits for an image change with the rest of its
    batch, or from one forward to the next (`batch_dependence` above `TOLERANCE`): what does
    it and the fix; none otherwise."""
    moved, repeat, training = batch_dependence(model, input_shape)
    if repeat > TOLERANCE:  # random in eval mode: no batch needed to move it
        return [
            f"{title} gives one image other logits at each eval-mode forward (they moved by "
            f"{repeat:.0%} of their largest between two): something random runs in eval mode, "
            "as F.dropout(x, p) does, whose training argument is True unless given; eval, "
            "predict, explain and the explorer then answer differently at each call; pass "
            "training=self.training, or use an nn.Dropout module"
        ]
    if moved <= TOLERANCE:
        return []
    no_stats = batch_statistics_layers(model)
    if no_stats:
        cause = (
            f"its BatchNorm layers {_names(no_stats)} keep no running statistics "
            "(track_running_stats=False), so they normalize each batch by its own mean and "
            "variance"
        )
        fix = "construct them with track_running_stats=True (the default)"
    elif training:
        cause = f"its forward puts {_names(training)} in training mode"
        fix = "leave the mode to model.train() and model.eval()"
    else:
        cause = "a layer mixes the images of a batch"
        fix = "let each image's logits depend on that image alone"
    return [
        f"{title} gives an image other logits in eval mode when other images share its batch "
        f"(they moved by {moved:.0%} of their largest when a second image joined it): {cause}; "
        "eval scores batches while predict, explain and the explorer may read one image, so "
        f"their answers differ; {fix}"
    ]


def _names(names: list[str], k: int = 4) -> str:
    """The first k names, and how many there are in all when there are more."""
    shown = ", ".join(names[:k])
    return shown if len(names) <= k else f"{shown} ... ({len(names)} in all)"
