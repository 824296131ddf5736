"""NumPy reference ops, written as the notes describe them: slide a window, take a dot product.

A teaching reference, checked against PyTorch in tests/test_reference.py: readable before
fast. Each output unit is one window of the input (§2.1); only the dot product inside a
window is vectorised. Arrays are NCHW like PyTorch; results are float64.

* :func:`conv2d`: a filter is K × K × C and makes one map (§2.5); F filters make F maps;
* :func:`max_pool2d`, :func:`avg_pool2d`: the same windows, reduced by max or mean (§3.1);
* :func:`softmax`: logits to probabilities, stable for large logits (§5.5);
* :func:`trace_conv`: every number behind one output unit (the notes' worked example, §2.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import SpecError
from cnnlab.geometry import _pair, conv_output_size

__all__ = ["ConvTrace", "avg_pool2d", "conv2d", "max_pool2d", "softmax", "trace_conv"]


def _grid(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """(H', W'): how many window positions fit down and across x (N, C, H, W) (§2.2)."""
    return (
        conv_output_size(x.shape[2], kernel[0], stride=stride[0]),
        conv_output_size(x.shape[3], kernel[1], stride=stride[1]),
    )


def _windows(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (i, j, patch) for every window position; x (N, C, H, W), patch (N, C, kh, kw)."""
    (kh, kw), (sh, sw) = kernel, stride
    out_h, out_w = _grid(x, kernel, stride)
    for i in range(out_h):
        for j in range(out_w):
            yield i, j, x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]


def _pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Zero padding on each side of H and W: (N, C, H, W) -> (N, C, H + 2ph, W + 2pw)."""
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _images(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise SpecError(f"{name} must be (N, C, H, W), got shape {x.shape}")
    return x


def conv2d(x, w, b=None, stride=1, padding=0) -> np.ndarray:
    """2-D convolution (cross-correlation, as in PyTorch) by sliding dot products (§2.1, §2.5).

    out[n, f, i, j] = Σ_{c,u,v} x_pad[n, c, i·S + u, j·S + v] · w[f, c, u, v] + b[f]
    x: (N, C, H, W); w: (F, C, kh, kw); b: (F,) or None -> (N, F, H', W') with H', W' from
    geometry.conv_output_size. stride and padding: int or (h, w).
    """
    x, w = _images(x), _images(w, "w")
    if w.shape[1] != x.shape[1]:
        raise SpecError(
            f"w has {w.shape[1]} input channels but x has {x.shape[1]}: a filter is "
            "kh × kw × C and must span all C input channels"
        )
    n_filters, _, kh, kw = w.shape
    bias = np.zeros(n_filters) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if bias.shape != (n_filters,):
        raise SpecError(f"b must have one value per filter ({n_filters}), got shape {bias.shape}")
    xp = _pad(x, _pair("padding", padding, 0))
    stride = _pair("stride", stride, 1)
    out = np.empty((x.shape[0], n_filters, *_grid(xp, (kh, kw), stride)))  # (N, F, H', W')
    for i, j, patch in _windows(xp, (kh, kw), stride):  # patch (N, C, kh, kw)
        # one dot product per (image, filter) pair: (N, C·kh·kw) @ (C·kh·kw, F) -> (N, F)
        out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + bias
    return out


def _pool(x, kernel, stride, reduce) -> np.ndarray:
    x = _images(x)
    kernel = _pair("kernel", kernel, 1)
    stride = kernel if stride is None else _pair("stride", stride, 1)
    out = np.empty((*x.shape[:2], *_grid(x, kernel, stride)))  # (N, C, H', W')
    for i, j, patch in _windows(x, kernel, stride):  # patch (N, C, kh, kw)
        out[:, :, i, j] = reduce(patch, axis=(2, 3))  # (N, C)
    return out


def max_pool2d(x, kernel, stride=None) -> np.ndarray:
    """Max pooling: the largest value in each window, per channel (§3.1).

    x: (N, C, H, W) -> (N, C, H', W'); stride defaults to kernel (non-overlapping windows).
    """
    return _pool(x, kernel, stride, np.max)


def avg_pool2d(x, kernel, stride=None) -> np.ndarray:
    """Average pooling: the mean of each window, per channel (§3.1).

    x: (N, C, H, W) -> (N, C, H', W'); stride defaults to kernel (non-overlapping windows).
    """
    return _pool(x, kernel, stride, np.mean)


def softmax(z, axis: int = -1) -> np.ndarray:
    """Softmax: exp(z_i) / Σ_j exp(z_j) along `axis`, values in (0, 1) summing to 1 (§5.5).

    Computed as exp(z − max z) / Σ exp(z − max z): the same value (the factor e^{−max}
    cancels) without overflow, so logits like 1000 work.
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))  # every exponent <= 0: no overflow
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True, eq=False)
class ConvTrace:
    """Every number behind one convolution output unit (§2.1): output = sum + bias.

    patch, filter, products: (C, kh, kw) (products = patch · filter element-wise);
    origin: (row, col) of the patch's top-left pixel in the unpadded input (negative when the
    window starts in the zero padding).
    """

    patch: np.ndarray
    filter: np.ndarray
    products: np.ndarray
    sum: float
    bias: float
    output: float
    origin: tuple[int, int]


def trace_conv(x, w, b=None, out_index=(0, 0, 0), stride=1, padding=0) -> ConvTrace:
    """Align, multiply, sum, add the bias (§2.1): the dot product that makes one output unit.

    x: one image (C, H, W), (H, W) or a batch of one (1, C, H, W); w: filters (F, C, kh, kw),
    one filter (C, kh, kw) or (kh, kw); b: None, a scalar or (F,); out_index: (f, i, j), or
    (i, j) for one filter.
    The output equals ``conv2d(x[None], w, b, stride, padding)[0, f, i, j]``.

    >>> patch = [[1, 2, 0], [0, 1, 1], [5, 0, 1]]
    >>> trace_conv(patch, [[1, 0, -1]] * 3, out_index=(0, 0)).output  # the notes' example
    4.0
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[None] if x.ndim == 2 else x  # (C, H, W)
    if x.ndim == 4 and len(x) == 1:
        x = x[0]  # a batch of one, as conv2d takes it
    elif x.ndim == 4:
        raise SpecError(f"trace_conv traces one image: pass x[n] (C, H, W), not a batch {x.shape}")
    w = np.asarray(w, dtype=np.float64)
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)  # (F, C, kh, kw)
    if x.ndim != 3 or w.ndim != 4 or w.shape[1] != x.shape[0]:
        raise SpecError(f"x (C, H, W) {x.shape} does not fit filters (F, C, kh, kw) {w.shape}")
    out_index = tuple(out_index)
    if len(out_index) not in (2, 3):
        raise SpecError(f"out_index must be (f, i, j) or (i, j), got {out_index}")
    f, i, j = (0, *out_index) if len(out_index) == 2 else out_index
    bias = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if bias.size == 1:
        bias = np.full(w.shape[0], bias[0])  # a scalar: the same bias for every filter
    if bias.shape != (w.shape[0],):
        raise SpecError(
            f"b must be a scalar or one value per filter ({w.shape[0]}), got shape {np.shape(b)}"
        )
    (ph, pw), (sh, sw) = _pair("padding", padding, 0), _pair("stride", stride, 1)
    kh, kw = w.shape[2:]
    out_h = conv_output_size(x.shape[1], kh, ph, sh)
    out_w = conv_output_size(x.shape[2], kw, pw, sw)
    if not (0 <= f < w.shape[0] and 0 <= i < out_h and 0 <= j < out_w):
        raise SpecError(
            f"out_index {out_index} is outside the output (F, H', W') = "
            f"{(w.shape[0], out_h, out_w)}"
        )
    xp = _pad(x[None], (ph, pw))[0]  # (C, H + 2ph, W + 2pw)
    patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw].copy()  # (C, kh, kw)
    filt = w[f].copy()
    # + 0.0 turns IEEE's -0.0 (0 times a negative weight) into 0.0, changing nothing else: a
    # product that is zero is shown as 0, never "-0."
    products = patch * filt + 0.0
    for a in (patch, filt, products):
        a.setflags(write=False)  # a frozen record stays frozen
    total = float(products.sum())
    return ConvTrace(
        patch=patch,
        filter=filt,
        products=products,
        sum=total,
        bias=float(bias[f]),
        output=total + float(bias[f]),
        origin=(i * sh - ph, j * sw - pw),
    )
