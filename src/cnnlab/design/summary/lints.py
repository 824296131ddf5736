"""Design lints: each a pure function of a `Trace` (facts.py) that returns its `Lint`s.

empty-output       a layer's output holds no values: a 0 in its shape (torch runs it)
floor              a window never reads the right/bottom edge (§2.2)
dilated-stride     a dilated window at stride > 1 skips pixels inside the map (§2.2)
even-kernel-same   'same' padding with an even kernel is asymmetric (§2.3)
linear-collapse    two linear maps with nothing nonlinear between that one map replaces (§4.1)
flatten-explosion  the dense layer after a flatten holds most parameters (§5.2)
fixed-size         the dense head's input size is tied to the image size (§5.2)
rf-small           the map entering the head does not see the whole image (§3.2)
saturating         two or more sigmoid/tanh-like outputs feed hidden layers of a deep net (§4.2)
probabilities-out  the output of K > 1 classes is already softmax's or sigmoid's: cross-entropy
                   adds another; a softmax of one value is constant (§5.5)
unfollowed         a torch function the trace cannot follow: rows with no receptive field

Two more come from the copy the trace runs, not from its facts (summary/__init__.py):
hooks              forward hooks of the user's are not run, so what they change is not shown
quantized          torch.ao layers keep packed weights: in no parameter or MAC total
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from cnnlab import geometry
from cnnlab.design.summary.calls import window_out
from cnnlab.design.summary.facts import SIZE_FREE, Lint, Trace, WeightFact, Window, WindowFact
from cnnlab.design.summary.render import call_label, shape_text
from cnnlab.errors import SpecError

FLATTEN_SHARE = 0.5  # flatten-explosion: the first dense layer holds more than this share
DEEP_NET = 6  # saturating: a net with at least this many conv/linear calls is deep
SQUASHES = 2  # saturating: the fewest saturating activations whose derivatives multiply
LARGEST_INPUT = 1 << 20  # fixed-size: input sizes searched up to this many pixels


def _label(name: str, call: int) -> str:
    """A row's name as the table shows it: 'block', 'block #2' for its second call."""
    return call_label(name or "(model)", call)


def _empty_axis(shape: tuple[int, ...]) -> str:
    """The name of the first 0 axis of one image's output: (C, H, W) or (features,)."""
    names = {1: ("features",), 3: ("channels", "height", "width")}.get(len(shape), ())
    i = shape.index(0)
    return names[i] if names else f"axis {i + 1} of {len(shape)}"


# a conv of 0 output channels never gets here (torch refuses it, so the summary does): 0
# channels come from the layer's own code, 0 features from a Linear(n, 0) or a slice
_EMPTY_FIX = {
    "channels": "it keeps 0 channels (a slice, split or narrow to 0 of them). Fix: keep at "
    "least one channel.",
    "features": "it makes 0 features (a Linear's out_features=0, a slice to 0). Fix: give it "
    "at least one feature.",
}


def empty_output(t: Trace) -> list[Lint]:
    """The first layer (in call order) whose output has no elements, a 0 in its shape: torch
    runs an AdaptiveAvgPool2d((0, 3)), a slice to 0 channels or a Linear(8, 0) without an
    error (a Conv2d(3, 0, 3) it refuses), and every layer after it computes on nothing (a
    sum over no values is 0, so the prediction ignores the input and nothing before it gets
    a gradient)."""
    empty = [r for r in t.rows if 0 in r.output_shape]
    if not empty:
        return []
    first, axis = empty[0], _empty_axis(empty[0].output_shape)
    why = _EMPTY_FIX.get(axis, (
        f"its output size along the {axis} is 0 (an adaptive pool's output_size, a slice or "
        "a reshape to 0). Fix: an output size of at least 1 along every axis."
    ))  # fmt: skip
    later = f"; {len(empty) - 1} later row(s) are empty too" if len(empty) > 1 else ""
    return [Lint(
        "empty-output", _label(first.name, first.call),
        f"layer {_label(first.name, first.call)} ({first.kind}) outputs "
        f"{shape_text(first.output_shape)}, which holds no values ({axis} 0){later}: torch "
        "runs it, but every layer after it computes on nothing, so the output does not "
        f"depend on the input and nothing before it learns; {why}",
    )]  # fmt: skip


def floor(t: Trace) -> list[Lint]:
    """Real pixels at the right/bottom edge that no window reads: (I − K + 2P)/S not an
    integer, so the output size is floored (§2.2). Zeros an F.pad put there (a 'same' conv at
    stride > 1) are not pixels. Along an axis whose stride passes the window (ResNet's 1×1/2
    shortcut) pixels are skipped everywhere by design: not an edge problem."""
    found = []
    for f in t.windows:
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
        w = f.window
        if not w.same and f.pad is None:
            continue
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


def composed_kernel(a: WeightFact, pools: tuple[Window, ...], b: WeightFact) -> tuple[int, int]:
    """Kernel per axis of the one conv that computes b(pools(a(x))): K = K_a + Σ (K_i − 1)·S,
    S the product of the strides before layer i."""
    kernel = []
    for axis in (0, 1):
        k, s = a.kernel[axis], a.stride[axis]
        for p in pools:
            k += (p.dilation[axis] * (p.kernel[axis] - 1)) * s
            s *= p.stride[axis]
        kernel.append(k + (b.kernel[axis] - 1) * s)
    return tuple(kernel)


def linear_collapse(t: Trace) -> list[Lint]:
    """Two conv (or two linear) maps with only BatchNorm, dropout or average pooling between
    are one linear map (§4.1). Said only where that one map is no larger and loses nothing:
    both full (groups = 1: not depthwise → pointwise) and the middle no narrower than what
    the one map could need (not a linear bottleneck), its weights no more than the pair's,
    and the first map's output read by the second alone (`Trace.shared`: a residual sum
    around the second keeps the first)."""
    found = []
    for b in t.weights:
        if b.before is None or b.before in t.shared:
            continue  # (shared: the first layer's output is read elsewhere too, so it stays)
        a = t.weights[b.before]
        if a.kind != b.kind or a.groups != 1 or b.groups != 1:
            continue
        kh, kw = composed_kernel(a, b.pools, b)
        one = a.in_ * b.out * kh * kw
        if a.out < min(b.out, a.in_ * kh * kw) or one > a.weights + b.weights:
            continue  # a rank or a size the pair saves: a deliberate factorisation
        found.append(Lint(
            "linear-collapse", b.layer,
            f"layers {a.layer} and {b.layer} are two linear maps with no nonlinearity between "
            "them (only BatchNorm/dropout/average pooling): W2(W1 x) is one linear map "
            f"({kh}×{kw}, {one:,} weights against the pair's {a.weights + b.weights:,}), so the "
            "second layer adds nothing a single layer could not do (§4.1). Fix: put an "
            "activation (ReLU) between them, or use one layer.",
        ))  # fmt: skip
    return found


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
    `near` px gives it (else None); as the size never falls while the input grows, each end
    is the last size that still gives it, going away from `near`."""
    if chain_size(chain, near, axis) != target:
        return None
    lo = _edge(lambda n: chain_size(chain, n, axis) >= target, near, -1)
    return lo, _edge(lambda n: chain_size(chain, n, axis) <= target, near, 1)


def _edge(holds: Callable[[int], bool], start: int, step: int) -> int:
    """The farthest size from `start` towards `step`'s sign (within 1..LARGEST_INPUT) where
    `holds` still does: doubling steps until it fails, then bisection between the two."""
    good, n = start, start + step
    while 1 <= n <= LARGEST_INPUT and holds(n):
        good, step = n, step * 2
        n = good + step
    bad = min(max(n, 0), LARGEST_INPUT + 1)  # fails, or outside the range
    while abs(bad - good) > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if holds(mid) else (good, mid)
    return good


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
    be a squeeze-and-excitation gate's mean in the middle of the net."""
    if not t.heads or t.heads[-1].rf is None or (t.rows and t.rows[-1].rf is None):
        return []
    head = t.heads[-1]
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


def saturating(t: Trace) -> list[Lint]:
    """Saturating activations (sigmoid, tanh, hard variants) feed hidden layers of a deep
    net: their derivative is small or zero where they saturate, so gradients vanish (§4.2).
    Vanishing is a product: one of them scales the gradient once, by a factor that does not
    shrink with depth (additive attention's tanh before its scoring Linear, a tanh in the
    head), so it takes SQUASHES of them. A gate (x · σ(s), squeeze-and-excitation) does not
    feed a layer through linear ops."""
    if len(t.squashes) < SQUASHES or len(t.weights) < DEEP_NET:
        return []
    first = t.squashes[0]
    return [Lint(
        "saturating", first.activation,
        f"{len(t.squashes)} saturating activation output(s) feed hidden layers (first: "
        f"{first.activation} into {first.layer}) of a net with {len(t.weights)} conv/linear "
        "layers: their derivative is at most 0.25 (sigmoid) or 1 (tanh) and near 0 where they "
        "saturate, so gradients vanish on the way back (§4.2). Fix: ReLU/GELU between hidden "
        "layers.",
    )]  # fmt: skip


def probabilities_out(t: Trace) -> list[Lint]:
    """The model's last call is a softmax or sigmoid: its output is probabilities, and
    cross-entropy, which applies log-softmax to what it is given, then takes a softmax of
    probabilities. Those lie in [0, 1], so the second softmax of n classes is at most
    e / (e + n − 1) for any class (0.23 at 10 classes: the loss never falls below 1.46), and
    the first one's Jacobian multiplies every gradient on the way back (§5.5). A
    log_softmax output is left alone: log_softmax(log_softmax(x)) = log_softmax(x).
    One channel is left alone too ((B, 1) or (B, 1, H, W): a binary head, a sigmoid
    segmentation map): cross-entropy of one channel is identically 0, so it is trained with
    another loss (nn.BCELoss). A softmax that leaves one value per image is 1 whatever the
    input (its gradient 0): a constant output, which no loss trains (`_constant`). A sigmoid
    of more outputs may be a multi-label head: the message says both fixes."""
    p = t.probabilities
    if p is None:
        return []
    where = f"layer {p.layer} ({p.made_by})" if p.module else f"{p.made_by} in {_forward(p.layer)}"
    if not _sigmoid(p.made_by) and (p.classes if p.values is None else p.values) == 1:
        return [Lint("probabilities-out", p.layer, _constant(where))]
    if p.classes == 1:
        return []
    n = p.classes
    bound = "e/(e + n − 1) of n classes"
    if n is not None and n > 1:
        bound = f"e/(e + {n - 1}) = {probability_ceiling(n):.2f} with these {n} outputs"
    harm = (
        f"no class can get near probability 1 (at most {bound}) and the gradients are squashed "
        "(§5.5). Fix: remove it so the model returns logits (cross-entropy applies log-softmax "
        "itself); apply softmax at prediction time (cnnlab predict does)"
    )
    if not _sigmoid(p.made_by):
        text = (
            f"the model's output is made by {where}: it is already probabilities, not logits, "
            "and cross-entropy (nn.CrossEntropyLoss, cnnlab train) applies log-softmax on top "
            f"of it: {harm}."
        )
    else:
        text = (
            f"the model's output is made by {where}: it is probabilities, not logits. If it is "
            "trained with cross-entropy (nn.CrossEntropyLoss; cnnlab train does), that applies "
            f"log-softmax on top of it: {harm}. For multi-label training, use "
            "nn.BCEWithLogitsLoss on the logits instead of the sigmoid and nn.BCELoss."
        )
    return [Lint("probabilities-out", p.layer, text)]


def _constant(where: str) -> str:
    """The message of a softmax over one output: exp(z)/exp(z) = 1 for every z."""
    return (
        f"the model's output is made by {where} over a single output: a softmax of one value "
        "is exp(z)/exp(z) = 1 whatever the input, so the output is constant and its gradient "
        "is 0: no loss can train the model (§5.5). Fix: for one output (binary), return the "
        "logit and train with nn.BCEWithLogitsLoss (or a sigmoid with nn.BCELoss); for K "
        "classes, K outputs."
    )


def probability_ceiling(classes: int) -> float:
    """The highest probability cross-entropy's softmax gives any class when its inputs lie in
    [0, 1], as probabilities do: a gap of at most 1 between them caps it at e/(e + K − 1), so
    its loss, −ln of that, is at least ln(1 + (K − 1)/e) (train.guard.loss_floor)."""
    return math.e / (math.e + classes - 1)


def _sigmoid(made_by: str) -> bool:
    """Whether the output's maker is a sigmoid (nn.Sigmoid, torch.sigmoid, expit)."""
    return "sigmoid" in made_by.lower() or "expit" in made_by


def _forward(layer: str) -> str:
    return "the model's forward" if layer == "(model)" else f"the forward of layer {layer}"


def unfollowed(t: Trace) -> list[Lint]:
    """A torch function whose effect on the receptive field the trace does not know: the
    rows after it show no field ('?'); which rows, by name. One lint per layer, naming each
    function lost there (a lint is one per code and layer: a second would hide the rows
    the first does not name)."""
    found, by_layer = [], {}
    for lost in t.lost:
        by_layer.setdefault(lost.layer, []).append(lost.function)
    for layer, functions in by_layer.items():
        rows = [_label(r.name, r.call) for r in t.rows if r.lost_by in functions]
        named = ", ".join(rows[:6]) + (f" and {len(rows) - 6} more" if len(rows) > 6 else "")
        after = (
            f"{len(rows)} row(s) after it have none ({named}); their shapes, parameters and "
            "MACs are still torch's own."
            if rows
            else "its output reaches no layer's row."
        )
        found.append(Lint(
            "unfollowed", layer,
            f"the trace cannot follow the receptive field through {' and '.join(functions)}: "
            f"{after}",
        ))  # fmt: skip
    return found


LINTS: tuple[Callable[[Trace], list[Lint]], ...] = (
    empty_output,
    floor,
    dilated_stride,
    even_kernel_same,
    linear_collapse,
    flatten_explosion,
    fixed_size,
    rf_small,
    saturating,
    probabilities_out,
    unfollowed,
)


def lints(t: Trace) -> list[Lint]:
    """Every lint's findings, in LINTS order, one per (code, layer)."""
    found: dict[tuple[str, str], Lint] = {}
    for lint in LINTS:
        for w in lint(t):
            found.setdefault((w.code, w.layer), w)
    return list(found.values())
