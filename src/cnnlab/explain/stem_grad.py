"""The input gradient of a strided conv with few input channels (a CNN's stem, 3 → 64, 7×7,
stride 2) as one ordinary conv and a pixel shuffle, for saliency and SmoothGrad.

torch computes ∂L/∂x of such a conv as a transposed conv with 3 output channels, which
oneDNN runs far below its speed elsewhere: on a ResNet-18 stem and 32×3×224×224 images,
383 ms against 127 ms for the forward (one thread). Split by phase: x position s·u + p gets
    ∂L/∂x[s·u + p] = Σ_k ∂L/∂y[u + (P + p − k)/s] · w[k]   over the taps k ≡ P + p (mod s),
a stride-1 correlation of ∂L/∂y per phase. All s² phases stacked as output channels
(C·s² of them) make one conv; `pixel_shuffle(s)` puts each phase at its positions: 203 ms
there, equal to torch's gradient up to float rounding (tests/test_explain_speed_stem.py).
A saliency of those images through a ResNet-18 shape: 1.09× (per-round CPU-time ratios
1.03–1.12, 7 rounds alternated with torch's backward in one process, one thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_CHANNELS = 4  # an image's channels: where torch's transposed conv is slow


def _taps(size: int, pad: int, s: int) -> list[tuple[int, int, int]]:
    """[(phase p, tap k, offset d)]: position s·u + p gets ∂L/∂y[u + d] · w[k]."""
    return [
        (p, k, (pad + p - k) // s) for p in range(s) for k in range(size) if (pad + p - k) % s == 0
    ]


def conv_input_grad(gy: Tensor, w: Tensor, x_shape: torch.Size, s: int, pad: tuple) -> Tensor:
    """∂L/∂x of y = conv2d(x, w, stride=s, padding=pad) (groups 1, dilation 1) from
    gy = ∂L/∂y.  gy (B, O, Hy, Wy), w (O, C, Kh, Kw) → (B, C, H, W) = x_shape."""
    _, c, h, wd = x_shape
    o = w.shape[0]
    th, tw = _taps(w.shape[2], pad[0], s), _taps(w.shape[3], pad[1], s)
    dh0, dh1 = min(d for *_, d in th), max(d for *_, d in th)
    dw0, dw1 = min(d for *_, d in tw), max(d for *_, d in tw)
    stacked = w.new_zeros(c, s, s, o, dh1 - dh0 + 1, dw1 - dw0 + 1)  # phases as out channels
    wt = w.transpose(0, 1)  # (C, O, Kh, Kw)
    for p, k, d in th:
        for q, j, e in tw:
            stacked[:, p, q, :, d - dh0, e - dw0] = wt[:, :, k, j]
    stacked = stacked.reshape(c * s * s, o, *stacked.shape[-2:])
    uh, uw = -(-h // s), -(-wd // s)  # positions per phase, rounded up, cropped below
    hy, wy = gy.shape[-2:]
    padded = F.pad(gy, (-dw0, uw - wy + dw1, -dh0, uh - hy + dh1))  # < 0 crops
    layout = torch.channels_last if gy.is_contiguous(memory_format=torch.channels_last) else None
    if layout is not None:
        stacked = stacked.contiguous(memory_format=layout)
    return F.pixel_shuffle(F.conv2d(padded, stacked), s)[:, :, :h, :wd]


class _StemConv(torch.autograd.Function):
    """The output the conv already computed (passed in a list, so autograd does not take it
    for an input, whose in-place use would then be refused), with `conv_input_grad` as its
    backward: the conv's own graph node is left unused."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, s: int, pad: tuple, out: list) -> Tensor:
        ctx.save_for_backward(weight)
        ctx.shape, ctx.s, ctx.pad = x.shape, s, pad
        return out[0]

    @staticmethod
    def backward(ctx, gy: Tensor) -> tuple:
        (weight,) = ctx.saved_tensors
        return conv_input_grad(gy, weight, ctx.shape, ctx.s, ctx.pad), None, None, None, None


def _eligible(m: nn.Module) -> bool:
    """An exact nn.Conv2d with few input channels, one square stride ≥ 2, integer zero
    padding, groups 1, dilation 1, frozen weights (no weight gradient is dropped), and no
    forward hook of its own: one that changes the output (a mask, a scale) runs before
    `_hook`, whose backward would skip that change's gradient."""
    return (
        type(m) is nn.Conv2d
        and not m._forward_hooks
        and m.in_channels <= MAX_CHANNELS
        and m.stride[0] == m.stride[1] >= 2
        and m.groups == 1
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
        and not m.weight.requires_grad
        and (m.bias is None or not m.bias.requires_grad)
    )


def _hook(m: nn.Conv2d, args: tuple, out: Tensor) -> Tensor | None:
    x = args[0] if args else None
    if not isinstance(x, Tensor) or x.dim() != 4 or not (x.requires_grad and out.requires_grad):
        return None
    return _StemConv.apply(x, m.weight.detach(), m.stride[0], tuple(m.padding), [out.detach()])


@contextmanager
def stem_gradients(model: nn.Module) -> Iterator[None]:
    """Inside the block, the input gradient of every eligible conv of `model` (see
    `_eligible`) is computed by `conv_input_grad`; the hooks are removed after, even on error."""
    if nn.modules.module._global_forward_hooks:  # they too run before `_hook`
        yield
        return
    handles = [m.register_forward_hook(_hook) for m in model.modules() if _eligible(m)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
