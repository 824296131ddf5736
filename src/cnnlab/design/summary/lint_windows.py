"""Lints of the windows of convs and pools (§2): pixels no window reads at the right/bottom
edge (floor) or between taps (dilated-stride), and the asymmetric 'same' padding of an even
kernel (even-kernel-same)."""

from __future__ import annotations

import functools

from cnnlab import geometry
from cnnlab.design.summary.facts import Lint, Trace, WindowFact


def floor(t: Trace) -> list[Lint]:
    """Real pixels at the right/bottom edge that no window reads: (I − K + 2P)/S not an
    integer, so the output size is floored (§2.2). Zeros an F.pad put there (a 'same' conv at
    stride > 1) are not pixels. Along an axis whose stride passes the window (ResNet's 1×1/2
    shortcut) pixels are skipped everywhere by design: not an edge problem."""
    found = []
    for f in t.windows:
        if f.window.stride == _ONES == f.window.dilation:  # most convs: a window per pixel
            continue
        dropped = [_dropped(f, axis) for axis in (0, 1)]
        if not any(dropped):
            continue
        w = f.window
        edges = " and ".join(
            f"along the {name} (stride {w.stride[i]}, padding {_padding_text(f, i)}) the last "
            f"{dropped[i]} {what} at the {edge}"
            for i, name, what, edge in _EDGES
            if dropped[i]
        )
        found.append(Lint(
            "floor", f.layer,
            f"a {_window_text(w)} over {f.size[0]}×{f.size[1]} never reads, "
            f"{edges}: (I − K + 2P)/S is not an integer, so the output size is floored and "
            "those pixels are ignored (§2.2, the floor problem). Fix: choose padding/stride "
            "(or the input size) so that I − K + 2P is a multiple of S.",
        ))  # fmt: skip
    return found


_EDGES = ((1, "width", "column(s)", "right"), (0, "height", "row(s)", "bottom"))
_ONES = (1, 1)


def _window_text(w) -> str:
    """ "3×3 window", or with dilation "3×3 window dilated by 2 (K = 5×5, its extent
    D(K − 1) + 1)": the K of the floor formula is the extent, not the kernel."""
    text = f"{w.kernel[0]}×{w.kernel[1]} window"
    if w.dilation == (1, 1):
        return text
    extent = [d * (k - 1) + 1 for k, d in zip(w.kernel, w.dilation, strict=True)]
    by = w.dilation[0] if w.dilation[0] == w.dilation[1] else "×".join(map(str, w.dilation))
    return f"{text} dilated by {by} (K = {extent[0]}×{extent[1]}, its extent D(K − 1) + 1)"


def _dropped(f: WindowFact, axis: int) -> int:
    w = f.window
    k, s, d = w.kernel[axis], w.stride[axis], w.dilation[axis]
    if w.same or w.ceil_mode or s > d * (k - 1) + 1 or s == d == 1:
        return 0  # (at stride 1 without dilation a window starts at every pixel: none lost)
    pads = (f.pad[2 * axis], f.pad[2 * axis + 1]) if f.pad else w.pads(axis)
    return dropped_pixels(f.size[axis], k, pads, s, d)


# a net asks about a few dozen distinct windows, hundreds of times (cleared with the trace's
# caches at each summary's start: `calls.clear_caches`)
dropped_pixels = functools.lru_cache(4096)(geometry.dropped_pixels)


def _padding_text(f: WindowFact, axis: int) -> str:
    if f.pad is not None:
        return f"{f.pad[2 * axis]} before and {f.pad[2 * axis + 1]} after"
    return str(f.window.padding[axis])


def dilated_stride(t: Trace) -> list[Lint]:
    """A dilated window at stride > 1 whose taps skip pixels inside the map (3×3 dilated by 2
    at stride 2 reads the even ones only; the floor counts the right/bottom edge alone).
    Where the stride passes the window (S > D(K − 1) + 1) the skip is by design, as there."""
    found = []
    for f in t.windows:
        if f.window.dilation == _ONES:  # contiguous taps (most windows)
            continue
        holes = [_holes(f, axis) for axis in (0, 1)]
        if any(holes):
            w, named = f.window, ((1, "columns"), (0, "rows"))
            axes = " and ".join(f"{holes[i]} of the {f.size[i]} {n}" for i, n in named if holes[i])
            found.append(Lint(
                "dilated-stride", f.layer,
                f"a {_window_text(w)} at stride {w.stride[0]}×{w.stride[1]} over "
                f"{f.size[0]}×{f.size[1]} never reads {axes} between the pixels it reads: its "
                "taps are D apart and its windows start S apart, so some pixels inside the map "
                "fall on no tap (§2.2). Fix: a dilated conv at stride 1 (downsample before or "
                "after it).",
            ))  # fmt: skip
    return found


def _holes(f: WindowFact, axis: int) -> int:
    w = f.window
    k, s, d = w.kernel[axis], w.stride[axis], w.dilation[axis]
    if d == 1 or s == 1 or k == 1 or w.ceil_mode or s > d * (k - 1) + 1:
        return 0  # contiguous taps, a window at every pixel, or a skip by design
    pads = (f.pad[2 * axis], f.pad[2 * axis + 1]) if f.pad else w.pads(axis)
    return unread_between(f.size[axis], k, pads, s, d)


def unread_between(size: int, kernel: int, pads: tuple, stride: int, dilation: int) -> int:
    """Real pixels before the last one read that no tap of any window reads: window j's taps
    are at j·S − P_before + i·D (i < K), for the O windows of the output-size formula."""
    n_out = geometry.conv_output_size(size, kernel, pads, stride, dilation)
    taps = (j * stride - pads[0] + i * dilation for j in range(n_out) for i in range(kernel))
    read = {p for p in taps if 0 <= p < size}
    return max(read) + 1 - len(read) if read else 0


def even_kernel_same(t: Trace) -> list[Lint]:
    """'same' padding of an even (dilated) kernel pads one more after than before: the map
    shifts by half a pixel (§2.3: P = (K − 1)/2 needs an odd K). Also an F.pad that does the
    same before a stride > 1 conv."""
    found = []
    for f in t.windows:
        w, pad = f.window, f.pad
        if not w.same and (pad is None or (pad[0] == pad[1] and pad[2] == pad[3])):
            continue  # no 'same' padding, or an F.pad of even sides
        reach = [d * (k - 1) for k, d in zip(w.kernel, w.dilation, strict=True)]
        if w.same:
            pairs = [w.pads(i) for i in (0, 1)]
        else:
            pairs = [(f.pad[0], f.pad[1]), (f.pad[2], f.pad[3])]
        odd = [p for p, r in zip(pairs, reach, strict=True) if sum(p) == r and p[0] != p[1]]
        if odd:
            how = "with padding='same' pads" if w.same else "after an F.pad of"
            found.append(Lint(
                "even-kernel-same", f.layer,
                f"kernel {w.kernel[0]}×{w.kernel[1]} {how} {odd[0][0]} before and {odd[0][1]} "
                "after (right/bottom), the 'same' padding of an even kernel: the padding is "
                "asymmetric and shifts the feature map by half a pixel (§2.3: P = (K − 1)/2 "
                "needs an odd K). Fix: use an odd kernel.",
            ))  # fmt: skip
    return found
