"""Lints of the map that enters the head (§3.2, §5.2): a flatten head that holds most
parameters (flatten-explosion), a dense layer tied to the input size, with the search for the
sizes that run (fixed-size), and units that do not see the whole image (rf-small)."""

from __future__ import annotations

import bisect
import math

from cnnlab.design.summary.calls import window_out
from cnnlab.design.summary.facts import SIZE_FREE, Lint, Trace, Window
from cnnlab.design.summary.render import shape_text
from cnnlab.errors import SpecError

FLATTEN_SHARE = 0.5  # flatten-explosion: the first dense layer holds more than this share
LARGEST_INPUT = 1 << 20  # fixed-size: input sizes searched up to this many pixels


def flatten_explosion(t: Trace) -> list[Lint]:
    """The first dense layer after a flatten holds more than FLATTEN_SHARE of the model."""
    d = t.dense
    if d is None or d.params <= FLATTEN_SHARE * t.total_params or math.prod(d.shape[1:]) == 1:
        return []  # a 1×1 map (after global pooling) is no flatten head
    return [Lint(
        "flatten-explosion", d.layer,
        f"the first dense layer after flattening {shape_text(d.shape)} into "
        f"{math.prod(d.shape):,} features holds {d.params:,} of {t.total_params:,} parameters "
        f"({d.params / t.total_params:.1%}): the flatten head is where the parameters live "
        "(§5.2). Fix: global average pooling (AdaptiveAvgPool2d(1)) before it, or more "
        "downsampling.",
    )]  # fmt: skip


def chain_size(chain: tuple, size: int, axis: int) -> int:
    """The map's length along `axis` for an input of `size` px: the chain's windows applied
    in order (0 where a window would not fit)."""
    windows = []
    while chain:
        windows.append(chain[0])
        chain = chain[1]
    for w in reversed(windows):
        try:
            size = window_out((size, size), w)[axis]
        except SpecError:
            return 0
    return size


def sizes_that_run(chain: tuple, target: int, axis: int, near: int) -> tuple[int, int] | None:
    """(smallest, largest) input size whose map along `axis` is `target` long, as an input of
    `near` px gives it (else None). Every window's output length never falls as its input
    grows, so the sizes giving a range of lengths are a range: walked back from the map to
    the input, one window at a time (`_window_preimage`), within 1..LARGEST_INPUT."""
    if chain_size(chain, near, axis) != target:
        return None
    lo, hi = target, target
    while chain:  # the last window applied first
        w, chain = chain
        lo, hi = _window_preimage(w, axis, max(lo, 1), hi)
    return max(lo, 1), min(hi, LARGEST_INPUT)


def _window_preimage(w: Window, axis: int, lo: int, hi: int) -> tuple[int, int]:
    """The input lengths I for which window w's output O along `axis` is within lo..hi.
    O = ⌊(I + P − E) / S⌋ + 1 (§2.2; P both sides' padding, E = D(K − 1) + 1 the dilated
    kernel) is at least lo from I = (lo − 1)S + E − P and at most hi up to I = hi·S + E − P − 1.
    ceil_mode's rounding (`calls.window_out`) is searched: its window count is monotone too."""
    if w.ceil_mode:
        return _searched_preimage(w, axis, lo, hi)
    k, s, d = w.kernel[axis], w.stride[axis], w.dilation[axis]
    extent, pads = d * (k - 1) + 1, sum(w.pads(axis))
    return (lo - 1) * s + extent - pads, hi * s + extent - pads - 1


def _searched_preimage(w: Window, axis: int, lo: int, hi: int) -> tuple[int, int]:
    """`_window_preimage` by bisection over the input lengths 1..LARGEST_INPUT + 1."""
    sizes = range(1, LARGEST_INPUT + 2)
    first = bisect.bisect_left(sizes, lo, key=lambda n: chain_size((w, ()), n, axis))
    last = bisect.bisect_right(sizes, hi, key=lambda n: chain_size((w, ()), n, axis))
    return first + 1, last  # sizes[first], sizes[last - 1]


def fixed_size(t: Trace) -> list[Lint]:
    """A dense layer on a flattened map ties the model to the input sizes that give that map
    (§5.2, the fixed-size trap), whether the map's size comes from the convs or a fixed
    pooling window (AvgPool2d(7) on ResNet's 7×7). Names the sizes that run."""
    d = t.dense
    if d is None or d.chain == SIZE_FREE or len(d.shape) != 3:
        return []
    h, w = t.image
    runs = ""
    if isinstance(d.chain, tuple):
        spans = [sizes_that_run(d.chain, d.shape[1 + i], i, t.image[i]) for i in (0, 1)]
        if all(spans):
            (h0, h1), (w0, w1) = spans
            runs = f" (heights {h0}–{h1} px and widths {w0}–{w1} px; this input is {h}×{w})"
            if spans[0] == spans[1]:
                runs = f" ({h0}–{h1} px on each side; this input is {h}×{w})"
    pool = ""
    if d.last_pool is not None and d.shape[1:] == (1, 1):
        layer, win = d.last_pool
        pool = f"the fixed {win.kernel[0]}×{win.kernel[1]} pooling window at layer {layer} and "
    return [Lint(
        "fixed-size", d.flatten,
        f"{pool}flattening the {shape_text(d.shape)} map {'tie' if pool else 'ties'} the dense "
        f"layer {d.layer} to {math.prod(d.shape):,} features, so the model runs only on inputs "
        f"that give that map{runs or f' (this input is {h}×{w})'} (§5.2, the fixed-size trap). "
        "Fix: global average pooling (AdaptiveAvgPool2d(1)) frees the input size.",
    )]  # fmt: skip


def rf_small(t: Trace) -> list[Lint]:
    """The map entering the head (the last global pool or flatten) has units that do not see
    the whole image along some axis (§3.2). A 1-px field is the raw image (an MLP). Silent
    where the output's field was lost: its head is then unknown, and the last head found may
    be a squeeze-and-excitation gate's mean in the middle of the net; so where the output
    is a map and the last head a pool (a segmentation's: a gate or a context branch; an
    autoencoder's flatten into its code is one)."""
    if not t.heads or t.heads[-1].rf is None or (t.rows and t.rows[-1].rf is None):
        return []
    head = t.heads[-1]
    if t.map_out and not head.flatten:
        return []
    short = [
        (axis, r.size, n)
        for axis, r, n in zip(("height", "width"), head.rf, t.image, strict=True)
        if 1 < r.size < n
    ]
    if not short:
        return []
    axis, size, n = short[0]
    return [Lint(
        "rf-small", head.layer,
        f"the map entering the head ({shape_text(head.shape)}) has a receptive field of "
        f"{size} px along the {axis} of a {n}-px input: no unit sees the whole image, so the "
        "head only combines local evidence (§3.2). Fix: more layers, stride, pooling or "
        "dilation before the head.",
    )]  # fmt: skip
