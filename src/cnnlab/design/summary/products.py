"""Calls that sum over an axis of two maps or move pixels between positions and channels, and
where each operand's axes go: the pure half of their tag rules (`roles.Roles._product_tag`
applies them).

- matrix products (matmul, bmm, mm, @) and scaled dot-product attention: an axis summed over
  (a product's inner axis, attention's keys and values positions) mixes every position along
  it, so where it is a spatial axis each output value sees the whole map along it (§3.2: an
  attention layer's field is the whole input, as a global pool's). Attention's query
  positions stay where they are: its output is the queries' map, each unit seeing it all.
- F.unfold (im2col) cuts a (B, C, H, W) map into windows, (B, C·kh·kw, L): a window step
  (`calls.window_rf`) whose positions are one merged axis; F.fold sews the windows back.
- upsampling: F.fold, a transposed conv (U-Net decoders), max unpooling (SegNet and
  QuickNAT decoders) and F.interpolate (nearest, bilinear, bicubic) by a whole factor S
  spread each unit over S finer positions: a pixel's field is its input units' (those whose
  windows cover it), at S times finer spacing (its start approximate: a window's centre).
  F.interpolate downsampling by a whole factor S (an image pyramid's scale_factor=0.5) is a
  window at stride S: of 1 tap (nearest), 2 (bilinear, even S), 4 (bicubic) or S (area).
- F.pixel_unshuffle (space to depth) by S cuts the map into S×S blocks, a window of S, stride
  S, as F.unfold; F.pixel_shuffle by S puts each unit back on S times finer positions, as a
  transposed conv of kernel S and stride S does.
- torch.einsum (CvT's attention: "bhlk,bhtk->bhlt"): a product whose letters say where each
  operand's dimensions go; a letter not in the output is summed over.
- nn.MultiheadAttention's F.multi_head_attention_forward on (L, N, E) maps: attention with
  positions first.
- norms whose `dim` comes after `ord` / `p` (torch.norm, Tensor.norm, linalg.vector_norm),
  and adaptive 1-D pooling (a (B, C, H·W) token map pooled to one value: a global pool).
- F.gumbel_softmax(logits, tau, hard, eps, dim=-1): a softmax over dim of the logits plus
  noise (one-hot if hard, its gradient the softmax's), as a softmax's field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from cnnlab.design.summary.blocked import Blocked, interpolated, upsampled
from cnnlab.design.summary.calls import T, arg, both, fns, pair
from cnnlab.design.summary.facts import Field, Window, record

MATMUL = both("matmul", "bmm", "mm") | fns("__matmul__", owner=T)
RMATMUL = fns("__rmatmul__", owner=T)  # x.__rmatmul__(y) is y @ x
ATTENTION = fns("scaled_dot_product_attention")
UNFOLD, FOLD = fns("unfold"), fns("fold")  # F.unfold / F.fold, not Tensor.unfold
NORMS = both("norm") | fns("vector_norm", owner=torch.linalg)  # dim at 2: (x, ord, dim)
ADAPTIVE_1D = fns("adaptive_avg_pool1d") | fns("adaptive_avg_pool1d", owner=torch)
TRANSPOSED = fns("conv_transpose2d")
UNPOOL = fns("max_unpool2d")
SHUFFLE, UNSHUFFLE = fns("pixel_shuffle"), fns("pixel_unshuffle")  # depth to space and back
INTERPOLATE = fns("interpolate")
MHA = fns("multi_head_attention_forward")
EINSUM = fns("einsum", owner=torch)
GUMBEL = fns("gumbel_softmax")
ROLES = MATMUL | RMATMUL | ATTENTION | MHA | UNFOLD | FOLD | NORMS | ADAPTIVE_1D | EINSUM
ROLES |= GUMBEL
ROLES |= TRANSPOSED | UNPOOL | SHUFFLE | UNSHUFFLE | INTERPOLATE
BLOCKS = UNFOLD | UNSHUFFLE  # a map cut into windows (`block_window`)
BACK = TRANSPOSED | UNPOOL | SHUFFLE  # a window's units put back on a finer map (`window_back`)
UPSAMPLED = FOLD | BACK | INTERPOLATE
# taps per axis each output reads (whole-factor upsampling); area and others: not followed
_TAPS = {"nearest": 1, "nearest-exact": 1, "bilinear": 2, "bicubic": 4}

Dims = list  # per input dimension, the output dimension it becomes (None: summed over)


def _batch(n_in: int, n_out: int, inner: int) -> range:
    """The leading (batch) dimensions of an operand, broadcast from the right."""
    return range(n_out - n_in, n_out - inner)


def operands(func: Callable, args: tuple, kwargs: dict, out: Any) -> list | None:
    """[(operand, Dims)] of a matrix product or attention call; None where the trace does not
    follow it (a 1-D operand: a dot product or a matrix-vector one)."""
    if func in MHA:  # (L, N, E) query, key, value; the output's (L, N, E)
        q, k, v = (arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
        if not all(isinstance(t, T) and t.dim() == 3 for t in (q, k, v)):
            return None
        return [(q, [0, 1, None]), (k, [None, 1, None]), (v, [None, 1, 2])]
    if func in EINSUM:
        return einsum_dims(args, kwargs)
    if func in ATTENTION:
        q, k, v = (arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
        n = out.dim()
        if not all(isinstance(t, T) and t.dim() == n and n >= 2 for t in (q, k, v)):
            return None
        return [
            (q, [*range(n - 1), None]),  # query positions stay; its features are summed over
            (k, [*range(n - 2), None, None]),  # keys: positions and features summed over
            (v, [*range(n - 2), None, n - 1]),  # values: positions summed over
        ]
    a = arg(args, kwargs, 0, "input")
    b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
    if func in RMATMUL:
        a, b = b, a
    if not (isinstance(a, T) and isinstance(b, T)) or a.dim() < 2 or b.dim() < 2:
        return None
    n = out.dim()
    return [
        (a, [*_batch(a.dim(), n, 2), n - 2, None]),  # (..., n, k): rows stay, k summed over
        (b, [*_batch(b.dim(), n, 2), None, n - 1]),  # (..., k, m): k summed over, columns stay
    ]


def einsum_dims(args: tuple, kwargs: dict) -> list | None:
    """[(operand, Dims)] of torch.einsum(equation, *operands) (or a list of them): each
    operand's dimension goes where its letter is in the output, None where the letter is not
    (summed over). Without "->" the output is the letters used once, sorted (torch's rule);
    "..." stands for an operand's remaining dimensions, broadcast from the right."""
    equation = arg(args, kwargs, 0, "equation")
    tensors = args[1:] if len(args) > 1 else kwargs.get("operands", ())
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    if not isinstance(equation, str) or not all(isinstance(t, T) for t in tensors):
        return None
    inputs, arrow, output = equation.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != len(tensors):
        return None
    pairs = list(zip(terms, tensors, strict=True))
    dots = max(t.dim() - len(term.replace("...", "")) for term, t in pairs)
    spelled = [_spelled(term, t.dim(), dots) for term, t in pairs]
    if arrow:
        out = _spelled(output, dots + len(output.replace("...", "")), dots)
    else:  # implicit: the letters used once, sorted, after the broadcast dimensions
        letters = [c for term in spelled for c in term]
        ellipsis = _ellipsis(dots, dots)
        out = ellipsis + sorted(c for c in set(letters) - set(ellipsis) if letters.count(c) == 1)
    where = {c: i for i, c in enumerate(out)}
    return [(t, [where.get(c) for c in term]) for term, t in zip(spelled, tensors, strict=True)]


def _ellipsis(n: int, dots: int) -> list[str]:
    """The names of the last n of the `dots` broadcast dimensions (aligned right)."""
    return [chr(0x100 + i) for i in range(dots - n, dots)]


def _spelled(term: str, ndim: int, dots: int) -> list[str]:
    """One name per dimension of an einsum term: its letters, "..." as the broadcast ones."""
    before, found, after = term.partition("...")
    if not found:
        return list(term)
    return [*before, *_ellipsis(ndim - len(before) - len(after), dots), *after]


def block_window(func: Callable, args: tuple, kwargs: dict) -> Window:
    """The window of F.unfold or of F.pixel_unshuffle(input, downscale_factor): S×S, stride S."""
    if func in UNFOLD:
        return unfold_window(args, kwargs)
    s = int(arg(args, kwargs, 1, "downscale_factor"))
    return Window((s, s), (s, s), (0, 0))


def windowed(r: Field, k: int, s: int, c: float | None = None) -> Field:
    """The field of a k-wide window at stride s over units of field `r` (one axis): it spans
    k units r.jump apart, steps s of them, centred c units in (the window's middle unless
    given): Field(r.size + (k − 1)·r.jump, r.jump·s, r.start + c·r.jump), c = (k − 1)/2."""
    c = (k - 1) / 2 if c is None else c
    return record(Field, (r.size + (k - 1) * r.jump, r.jump * s, r.start + c * r.jump))


def unfold_window(args: tuple, kwargs: dict) -> Window:
    """F.unfold(input, kernel_size, dilation=1, padding=0, stride=1)'s window."""
    kernel = pair(arg(args, kwargs, 1, "kernel_size"), (1, 1))
    dilation = pair(arg(args, kwargs, 2, "dilation", 1), (1, 1))
    padding = pair(arg(args, kwargs, 3, "padding", 0), (0, 0))
    stride = pair(arg(args, kwargs, 4, "stride", 1), (1, 1))
    return Window(kernel, stride, padding, dilation)


def spread(rf: Field, k: int, s: int, p: float, d: int) -> Field | None:
    """One axis of a transposed window (kernel k, stride s, padding p, dilation d) over units
    of field `rf`: an output pixel reads the ⌈(D(K − 1) + 1) / S⌉ input units (at most) whose
    windows cover it, `rf.jump` apart, at S times finer spacing, centred back as the forward
    window moved them (geometry.rf_grow's start, undone). None where the units' spacing is
    no multiple of the stride (no whole-pixel spacing)."""
    if rf.jump % s:
        return None
    extent, jump = d * (k - 1) + 1, rf.jump // s
    start = rf.start - (d * (k - 1) / 2 - p) * jump
    if (s > 1 or type(rf) is Blocked) and p == int(p):  # blocks of s (`blocked.py`)
        return upsampled(rf, extent, s, int(p), jump, start)
    return Field(rf.size + (math.ceil(extent / s) - 1) * rf.jump, jump, start)


def fold_field(rf: Field, args: tuple, kwargs: dict, axis: int) -> Field | None:
    """F.fold(input, output_size, kernel_size, dilation, padding, stride): `spread`."""
    k = pair(arg(args, kwargs, 2, "kernel_size"), (1, 1))[axis]
    d = pair(arg(args, kwargs, 3, "dilation", 1), (1, 1))[axis]
    p = pair(arg(args, kwargs, 4, "padding", 0), (0, 0))[axis]
    return spread(rf, k, pair(arg(args, kwargs, 5, "stride", 1), (1, 1))[axis], p, d)


def transposed_field(rf: Field, args: tuple, kwargs: dict, axis: int) -> Field | None:
    """F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
    dilation): `spread` with the weight's kernel (output_padding adds a row, no reach)."""
    k = arg(args, kwargs, 1, "weight").shape[2 + axis]
    s = pair(arg(args, kwargs, 3, "stride", 1), (1, 1))[axis]
    p = pair(arg(args, kwargs, 4, "padding", 0), (0, 0))[axis]
    return spread(rf, k, s, p, pair(arg(args, kwargs, 7, "dilation", 1), (1, 1))[axis])


def window_back(func: Callable, rf: Field, args: tuple, kwargs: dict, axis: int) -> Field | None:
    """`transposed_field`, `unpooled_field` or, for F.pixel_shuffle(input, upscale_factor),
    `spread` with a window of S, stride S (each unit at S×S finer positions, no overlap)."""
    if func in TRANSPOSED:
        return transposed_field(rf, args, kwargs, axis)
    if func in SHUFFLE:
        s = int(arg(args, kwargs, 1, "upscale_factor"))
        return spread(rf, s, s, 0, 1)
    return unpooled_field(rf, args, kwargs, axis)


def unpooled_field(rf: Field, args: tuple, kwargs: dict, axis: int) -> Field | None:
    """F.max_unpool2d(input, indices, kernel_size, stride=None, padding=0): each unit goes
    back to one position of its pooling window, so a pixel reads the units whose windows
    cover it: `spread` with the pool's window (stride defaults to the kernel, as the pool's),
    the field of a transposed conv of the same kernel and stride."""
    k = pair(arg(args, kwargs, 2, "kernel_size"), (1, 1))[axis]
    s = pair(arg(args, kwargs, 3, "stride") or k, (k, k))[axis]
    return spread(rf, k, s, pair(arg(args, kwargs, 4, "padding", 0), (0, 0))[axis], 1)


def upsampled_field(rf: Field, n_in: int, n_out: int, mode: Any, corners: bool = False):
    """F.interpolate by a whole factor S = n_out / n_in: each output reads `_TAPS[mode]`
    neighbouring inputs, a transposed window of S·taps (bilinear ×2: the 4-tap filter
    ¼ ¾ ¾ ¼) centred on it; None for a factor that is not whole or a mode the trace does
    not follow (area). By an odd S every S-th output sits on an input, whose neighbours
    then weigh 0: bilinear reads [⌊(o − c)/S⌋, ⌈(o − c)/S⌉], c = (S − 1)/2, a window of
    2S − 1 padded c; bicubic the table of `blocked.interpolated`. With align_corners
    (`corners`) output o sits at o·a, a = (n_in − 1)/(n_out − 1) < 1/S, on no period of
    S: all taps, blocks of S padded ⌈(taps − 1)·S/2⌉ (a window of L positions reads at
    most ⌈L·a⌉ + taps units, ⌈L/S⌉ + taps at most: the count of every alignment)."""
    taps = _TAPS.get(mode)
    if taps is None or not n_in or n_out % n_in:
        return None
    s = n_out // n_in
    if corners and taps > 1:
        return spread(rf, taps * s, s, ((taps - 1) * s + 1) // 2, 1)
    if taps == 2 and s % 2:
        return spread(rf, 2 * s - 1, s, (s - 1) // 2, 1)
    if taps == 4 and s % 2:
        even = spread(rf, 4 * s, s, 3 * s / 2, 1)
        return even and interpolated(rf, 2, 1 - s, 2 * s, 4, even.jump, even.start)
    return rf if s == 1 and taps == 1 else spread(rf, taps * s, s, (taps - 1) * s / 2, 1)


def resampled_field(rf: Field, n_in: int, n_out: int, args: tuple, kwargs: dict, axis: int):
    """F.interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor,
    antialias) along one axis: upsampling (`upsampled_field`) or downsampling by a whole
    factor S (1 / scale_factor as torch reads it, else n_in / n_out): output i reads the
    input around i·S + c, c = (S − 1)/2 (torch's half-pixel rule; nearest: 0, nearest-exact:
    ⌊S/2⌋), `_DOWN_TAPS` of it: a window of that many taps at stride S. A downsampling with
    align_corners or antialias, or by a factor that is not whole: None (not followed); an
    upsampling with align_corners is followed (antialias changes no tap of an upsampling)."""
    mode = arg(args, kwargs, 3, "mode", "nearest")
    if n_out >= n_in:
        return upsampled_field(rf, n_in, n_out, mode, bool(arg(args, kwargs, 4, "align_corners")))
    if arg(args, kwargs, 4, "align_corners") or arg(args, kwargs, 6, "antialias", False):
        return None
    scale = arg(args, kwargs, 2, "scale_factor")
    if scale is not None and not arg(args, kwargs, 5, "recompute_scale_factor"):
        factor = 1 / (scale[axis] if isinstance(scale, (tuple, list)) else scale)
    else:
        factor = n_in / n_out
    s = round(factor)
    taps = _DOWN_TAPS.get(mode, lambda s: None)(s)
    if taps is None or abs(factor - s) > 1e-6:
        return None
    c = 0 if mode == "nearest" else s // 2 if mode == "nearest-exact" else (s - 1) / 2
    return windowed(rf, taps, s, c)


# taps per axis an output of a downsampling by S reads (`resampled_field`): bilinear and
# bicubic at an odd S sample a pixel exactly (the other taps weigh 0); area averages S
_DOWN_TAPS: dict[str, Callable[[int], int]] = {
    "nearest": lambda s: 1, "nearest-exact": lambda s: 1, "area": lambda s: s,
    "bilinear": lambda s: 1 if s % 2 else 2, "bicubic": lambda s: 1 if s % 2 else 4,
}  # fmt: skip


def reduce_dim_at(func: Callable) -> int:
    """Where a reduction's `dim` argument is: after `ord` / `p` for the norms."""
    return 2 if func in NORMS else 1


def pools_all(func: Callable, out: Any) -> bool:
    """An adaptive 1-D pool to one value (over the last axis, as a reduction over it)."""
    return func in ADAPTIVE_1D and out.dim() >= 1 and out.shape[-1] == 1
