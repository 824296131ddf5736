"""Lints of what lies between the layers (§4): two linear maps with nothing nonlinear between
(linear-collapse), saturating activations whose derivatives multiply in a deep net
(saturating); and BatchNorm layers that normalize by their batch in eval mode too
(batch-statistics)."""

from __future__ import annotations

from cnnlab.design.summary.facts import Lint, Trace, WeightFact, Window

DEEP_NET = 6  # saturating: a net with at least this many conv/linear calls is deep
SQUASHES = 2  # saturating: the fewest saturating activations whose derivatives multiply


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
    around the second keeps the first), and each layer's weights serving that one use (a
    module called on other inputs too keeps them there: the pair is no one map to merge)."""
    found = []
    calls: dict[str, int] = {}
    for w in t.weights:
        calls[w.layer] = calls.get(w.layer, 0) + 1
    for b in t.weights:
        if b.before is None or b.before in t.shared or calls[b.layer] > 1:
            continue  # (shared: the first layer's output is read elsewhere too, so it stays)
        a = t.weights[b.before]
        if calls[a.layer] > 1 or a.kind != b.kind or a.groups != 1 or b.groups != 1:
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


def batch_statistics(t: Trace) -> list[Lint]:
    """BatchNorm layers built with track_running_stats=False that ran: they keep no running
    mean and variance, so in eval mode too they normalize each batch by its own, and one
    image's logits change with the images beside it (a batch of one: by the image's own
    statistics). `train` and `import` find it from two forwards (inspect/alone.py); here
    before any."""
    ran = {r.name for r in t.rows} if t.batch_stats else ()
    names = [n or "(the model)" for n in t.batch_stats if n in ran]
    if not names:
        return []
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return [Lint(
        "batch-statistics", names[0],
        "BatchNorm without running statistics (track_running_stats=False) in "
        f"{', '.join(names[:5])}{more}: in eval mode too it normalizes each batch by the "
        "batch's own mean and variance, so an image's logits change with the other images in "
        "its batch (eval's batches and predict's one image disagree). Fix: construct it with "
        "track_running_stats=True (the default), or normalize each image alone (GroupNorm).",
    )]  # fmt: skip
