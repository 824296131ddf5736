"""Gradient saliency and SmoothGrad (notes §5.4: which pixels the decision looks at).

saliency(x)[b, i, j] = max_c |∂ logit_{t_b}(x_b) / ∂ x_b[c, i, j]|   (Simonyan et al. 2014)
SmoothGrad averages such gradient maps over noisy copies x + N(0, σ²) (Smilkov et al. 2017).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from cnnlab.errors import ExplainError
from cnnlab.explain.stem_grad import stem_gradients
from cnnlab.inspect import (
    OutputSelector,
    check_images,
    forward,
    gradients,
    needs_gradients,
    preserved,
    resolve_target,
    run_fast,
)
from cnnlab.inspect.progress import Progress

Target = int | Iterable[int] | Tensor | None

# What passes the logits forward but no gradient back: autograd warns only, and gives None.
NO_BACKWARD = "an op without a backward, as torch.ao's quantized layers: explain the float model"


def _input_gradient(
    model: nn.Module, x: Tensor, target: Target, output: OutputSelector
) -> tuple[Tensor, Tensor]:
    """(∂ logit_t / ∂ x  (B, C, H, W), target (B,)) from one forward and one backward.

    The backward starts from the sum of the selected logits: images are independent in eval
    mode, so the gradient of the sum w.r.t. x_b is the gradient of image b's own logit.
    A stem conv's input gradient is one conv and a pixel shuffle (`stem_gradients`).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), stem_gradients(model):
        logits = forward(model, x, output)  # (B, K)
        t = resolve_target(target, logits)
        selected = logits.gather(1, t[:, None]).sum()
        if not selected.requires_grad:  # autograd's own error says nothing of the model
            raise ExplainError(
                "the logits do not depend on the input through autograd: the model's forward "
                "cuts the gradient (torch.no_grad(), .detach()); a saliency map needs it, "
                "Grad-CAM at a layer after the cut does not (--method gradcam --layer NAME)"
            )
        (grad,) = gradients(selected, [x])  # through reentrant checkpoints too
    if grad is None:  # the graph reaches x only through an op without a backward
        raise ExplainError(f"the logits reach the input only through {NO_BACKWARD}")
    return grad, t


def saliency(
    model: nn.Module,
    x: Tensor,
    target: Target = None,
    *,
    output: OutputSelector = None,
    channels_last: bool | None = None,
) -> Tensor:
    """Vanilla gradient saliency: max over channels of |∂ logit_target / ∂ x|.

    x: (B, C, H, W) normalized images → (B, H, W), ≥ 0. target: class per image (int, list or
    (B,) tensor); None = the predicted class. output: picks the logits from a tuple/dict output.
    Equals Captum's `Saliency(model.eval()).attribute(x, target, abs=True).amax(1)`: the model
    runs in eval mode (running BatchNorm statistics, no dropout), its own mode restored after;
    float32 or wider (a float16 or bfloat16 model's too).
    A batch of `inspect.fast.SMALL_BATCH` pixels or more runs on an inference copy of the model
    (BatchNorm folded into convs, channels-last layout; see `run_fast`), a smaller one on the
    model itself (channels_last None): channels_last None tries channels-last and falls back to
    the default layout for a model that `.view()`s a conv output; True / False force one layout.
    """
    x = check_images(x)  # an inference tensor: a copy autograd can track
    needs_gradients("saliency")
    with preserved(model):
        grad, _ = run_fast(
            lambda run, x: _input_gradient(run, x, target, output),
            model,
            x,
            channels_last=channels_last,
        )
    return _at_least_float32(grad.abs().amax(1))  # (B, H, W)


def smoothgrad(
    model: nn.Module,
    x: Tensor,
    target: Target = None,
    *,
    n: int = 50,
    sigma: float = 0.15,
    batch_size: int = 64,
    seed: int = 0,
    output: OutputSelector = None,
    progress: Progress | None = None,
) -> Tensor:
    """SmoothGrad: saliency averaged over n noisy copies x + N(0, σ²), σ = sigma·(max − min of
    each image), the paper's noise level (10–20 % of the input range; default 15 %, n = 50).

    Order of operations: |gradient| of each noisy copy is averaged over the n copies, then the
    max over channels is taken: mean_n |∂ logit / ∂ x̃_n| per channel, as Captum's
    `NoiseTunnel(Saliency(model)).attribute(..., nt_type="smoothgrad", abs=True)` and the
    paper's absolute-value maps; averaging signed gradients first would cancel them.
    The target is fixed from the clean images (None = their predicted class). Eval mode, as
    `saliency`.
    x: (B, C, H, W) → (B, H, W). Copies run batch_size images per forward + backward.
    progress: progress(copies done, n, "smoothgrad") after each forward + backward.
    """
    x = check_images(x)  # an inference tensor: a copy autograd can track
    needs_gradients("smoothgrad")
    _check_smoothgrad_args(n, sigma, batch_size)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    b = x.shape[0]
    with preserved(model):
        with torch.no_grad():
            t = resolve_target(target, forward(model, x, output))  # (B,)
        spread = (x.amax((1, 2, 3)) - x.amin((1, 2, 3))) * sigma  # (B,)
        total = torch.zeros_like(x)
        copies_per_chunk = max(1, batch_size // b)
        if progress is not None:
            progress(0, n, "smoothgrad")
        for start in range(0, n, copies_per_chunk):
            k = min(copies_per_chunk, n - start)
            noise = torch.randn((k, *x.shape), generator=gen, device=x.device, dtype=x.dtype)
            noisy = (x + noise * spread[:, None, None, None]).reshape(k * b, *x.shape[1:])
            grad, _ = _input_gradient(model, noisy, t.repeat(k), output)  # (k·B, C, H, W)
            total += grad.abs().reshape(k, *x.shape).sum(0)
            if progress is not None:
                progress(start + k, n, "smoothgrad")
    return _at_least_float32((total / n).amax(1))  # (B, H, W)


def _whole(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_smoothgrad_args(n: object, sigma: object, batch_size: object) -> None:
    """n and batch_size whole numbers >= 1, sigma a finite number >= 0; ExplainError naming
    the argument and a valid value for anything else."""
    if not _whole(n) or n < 1:
        raise ExplainError(
            f"smoothgrad: n is the number of noisy copies, a whole number >= 1 (e.g. n=50); "
            f"got n={n!r}"
        )
    real = isinstance(sigma, numbers.Real) and not isinstance(sigma, bool)
    if not real or not math.isfinite(sigma) or sigma < 0:
        raise ExplainError(
            "smoothgrad: sigma is the noise's spread as a share of each image's value range, "
            f"a number >= 0 (e.g. sigma=0.15); got sigma={sigma!r}"
        )
    if not _whole(batch_size) or batch_size < 1:
        raise ExplainError(
            "smoothgrad: batch_size is the images per forward, a whole number >= 1 "
            f"(e.g. batch_size=64); got batch_size={batch_size!r}"
        )


def _at_least_float32(maps: Tensor) -> Tensor:
    """maps in float32 or wider, as gradcam's (float64 stays float64): numpy, so matplotlib
    and every saved image, takes no bfloat16."""
    return maps.to(torch.promote_types(maps.dtype, torch.float32))
