"""The norm of a conv chain (a BatchNorm2d, GroupNorm or InstanceNorm2d right after the conv)
and the numbers behind one unit of its output: `norm_step`.

Every norm computes y = (x − μ) / √(σ² + ε) · γ + β for unit (f, i, j), x the conv's output
there; they differ in where μ and σ² come from (the probe runs in eval mode, as explain does):

* BatchNorm2d: its running mean and variance of channel f (none kept: the value alone, as
  before GroupNorm was followed);
* GroupNorm(G, C): this image's mean and (biased) variance over f's group of C/G channels
  (f // (C/G)) and all H·W positions; γ, β of channel f when affine;
* InstanceNorm2d: this image's mean and variance over channel f's H·W positions, or its
  running ones when it tracks them (eval mode reads those); γ, β when affine.

μ and σ² are this image's from the conv's output the probe kept (its own call's). The
formula is shown only when the norm's whole output is torch's (F.group_norm /
F.instance_norm of that conv output) and the unit's value is the formula's: a subclass whose
forward computes more (BiT's GroupNorm with its activation inside) gets its value alone, as
the formula would add up to it at some units and not at others.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# the norms a chain follows: a LayerNorm2d over channels (ConvNeXt's) is each model's own
# module, with no type to know it by
NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)
STAGES = {nn.BatchNorm2d: "batchnorm", nn.GroupNorm: "groupnorm", nn.InstanceNorm2d: "instancenorm"}


def is_norm(m: nn.Module) -> bool:
    return isinstance(m, NORMS)


def norm_step(norm: nn.Module, call: str, before: Tensor, after: Tensor, f: int, i: int, j: int):
    """{stage, layer, value, ...} of unit (f, i, j) of the norm call `call`, from the conv's
    output `before` (C, H, W) and the norm's `after` (C, H, W): value is after[f, i, j];
    mean, var, eps, gamma, beta (and where μ, σ² come from) when they give that value."""
    value = float(after[f, i, j])
    if isinstance(norm, nn.BatchNorm2d):  # as it was: the running statistics, unchecked
        return _batchnorm_step(norm, call, value, f)
    stage = next(s for t, s in STAGES.items() if isinstance(norm, t))
    step: dict[str, Any] = {"stage": stage, "layer": call, "kind": type(norm).__name__}
    step["value"] = value
    if not _is_torchs(norm, before, after):  # a subclass computing more (BiT's norm + ReLU)
        return step
    found = _group_stats if stage == "groupnorm" else _instance_stats
    (mean, var), where = found(norm, before, f)
    gamma, beta = _affine(norm, f)
    x, scale = float(before[f, i, j]), 1.0 / math.sqrt(var + norm.eps)
    y = (x - mean) * scale * gamma + beta
    # fp32 in the network: its error grows with the normalised input's size (1e-4 relative)
    if abs(y - value) <= 1e-4 * (abs(gamma) * scale * (abs(x) + abs(mean)) + abs(beta)) + 1e-5:
        step.update(mean=mean, var=var, eps=norm.eps, gamma=gamma, beta=beta, **where)
    return step


@torch.no_grad()
def _is_torchs(norm: nn.Module, before: Tensor, after: Tensor) -> bool:
    """Whether after (C, H, W) is torch's own norm of before, as the eval-mode forward of
    nn.GroupNorm / nn.InstanceNorm2d computes it."""
    x = before[None].float()
    if isinstance(norm, nn.GroupNorm):
        y = F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    else:
        mean, var = norm.running_mean, norm.running_var
        own = not norm.track_running_stats or mean is None  # its input's statistics
        y = F.instance_norm(x, mean, var, norm.weight, norm.bias, own, 0.0, norm.eps)
    return y.shape[1:] == after.shape and torch.allclose(y[0], after, rtol=1e-4, atol=1e-5)


def _batchnorm_step(bn: nn.BatchNorm2d, call: str, value: float, f: int) -> dict[str, Any]:
    step: dict[str, Any] = {"stage": "batchnorm", "layer": call, "value": value}
    if bn.running_mean is not None:
        step.update(
            mean=float(bn.running_mean[f]),
            var=float(bn.running_var[f]),
            eps=bn.eps,
            gamma=bn.weight[f].item() if bn.weight is not None else 1.0,
            beta=bn.bias[f].item() if bn.bias is not None else 0.0,
        )
    return step


def _group_stats(gn: nn.GroupNorm, before: Tensor, f: int) -> tuple[tuple, dict[str, Any]]:
    """μ, σ² of f's group: channels [g·C/G, (g+1)·C/G), every position, this image."""
    per = gn.num_channels // gn.num_groups
    lo = f // per * per
    return _image_stats(before[lo : lo + per], [lo, lo + per])


def _instance_stats(inorm: nn.InstanceNorm2d, before: Tensor, f: int) -> tuple[tuple, dict]:
    """μ, σ² of channel f: this image's, or the running ones an eval-mode norm that tracks
    them reads (F.instance_norm's use_input_stats = training or not track_running_stats)."""
    if inorm.track_running_stats and inorm.running_mean is not None:  # as _is_torchs reads
        mean_var = (float(inorm.running_mean[f]), float(inorm.running_var[f]))
        return mean_var, {"statistics": "running", "channels": [f, f + 1]}
    return _image_stats(before[f : f + 1], [f, f + 1])


def _image_stats(block: Tensor, channels: list[int]) -> tuple[tuple, dict[str, Any]]:
    """(mean, biased variance) of block (c, H, W) in float64 (the norm divides by N), and
    what they were taken over: channels [lo, hi) of this image, count numbers."""
    b = block.double()
    mean_var = (float(b.mean()), float(b.var(unbiased=False)))
    return mean_var, {"statistics": "image", "channels": channels, "count": b.numel()}


def _affine(norm: nn.Module, f: int) -> tuple[float, float]:
    """(γ, β) of channel f: (1, 0) for a norm without an affine transform."""
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    gamma = weight[f].item() if weight is not None else 1.0
    return gamma, bias[f].item() if bias is not None else 0.0
