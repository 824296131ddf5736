"""Lints of the model's output, which cross-entropy reads as logits (§5.5): probabilities
instead (probabilities-out), scores a bounded activation made (bounded-scores)."""

from __future__ import annotations

import math

from cnnlab.design.summary.facts import Lint, Trace


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
    if p is None or p.bounds is not None:
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
    return softmax_ceiling(classes, 1.0)


# bounded-scores: a ceiling this high costs a classifier nothing it would feel (cross-entropy
# cannot fall below 0.01 nats): nn.Hardtanh(-5, 5) over 10 classes caps at 99.96 %
CAP_UNFELT = 0.99


def softmax_ceiling(classes: int, spread: float) -> float:
    """The highest probability softmax gives any of K classes when its inputs lie within
    `spread` of each other: e^w / (e^w + K − 1), w the spread (one input at the top, the
    K − 1 others w below it); a tanh's w = 2 gives train.guard.tanh_ceiling."""
    return math.e**spread / (math.e**spread + classes - 1)


def bounded_scores(t: Trace) -> list[Lint]:
    """The model's K > 1 class scores come out of a bounded activation (MONAI's ViT ends its
    head in nn.Tanh, `post_activation="Tanh"`): scores within a spread w give softmax no
    class above e^w/(e^w + K − 1) (`softmax_ceiling`; a tanh's w = 2: 45.1 % at K = 10), so
    no prediction is confident and cross-entropy cannot fall below −ln of that (§5.5);
    silent where that ceiling is CAP_UNFELT or more (an nn.Hardtanh(-5, 5)). A sigmoid's are
    probabilities (probabilities-out says so); a tanh before a Linear is no output
    (`bounded.bounded_output`)."""
    p = t.probabilities
    if p is None or p.bounds is None:
        return []
    (low, high), k = p.bounds, p.classes
    top, e = softmax_ceiling(k, high - low), {1: "e", 2: "e²"}.get(high - low, f"e^{high - low:g}")
    if top >= CAP_UNFELT:
        return []
    if p.module:
        where, drop = f"layer {p.layer} ({p.made_by})", f"the final {p.made_by}"
    else:
        where = f"a saturating function (torch.tanh, F.hardtanh) in {_forward(p.layer)}"
        drop = "the final tanh"
    return [Lint(
        "bounded-scores", p.layer,
        f"the model's {k} class scores come out of {where}, so they lie between {low:g} and "
        f"{high:g}: softmax gives no class more than {e}/({e} + {k - 1}) = {top:.1%}, "
        f"so no prediction is confident and cross-entropy cannot fall below {-math.log(top):.3f} "
        f"(§5.5). Fix: drop {drop} and return raw logits, which nn.CrossEntropyLoss wants "
        "(MONAI's ViT: post_activation=None).",
    )]  # fmt: skip


def _sigmoid(made_by: str) -> bool:
    """Whether the output's maker is a sigmoid (nn.Sigmoid, torch.sigmoid, expit)."""
    return "sigmoid" in made_by.lower() or "expit" in made_by


def _forward(layer: str) -> str:
    return "the model's forward" if layer == "(model)" else f"the forward of layer {layer}"
