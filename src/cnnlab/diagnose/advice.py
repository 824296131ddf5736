"""What to try: the measurements turned into problems and fixes (notes §4.2-4.4), and the
small set of them a training loop logs each epoch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.activations import ACTIVATIONS
from cnnlab.diagnose.gradients import GradientFlow, Makeup, gradient_flow
from cnnlab.diagnose.jsonable import finite
from cnnlab.diagnose.units import ActivationLayer, ActivationStats, DeadUnits, dead_units
from cnnlab.errors import ExplainError


def epoch_diagnostics(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> dict:
    """Dead share per ReLU site and gradient L2 per layer on one training batch; JSON-ready.

    x: (B, C, H, W) normalised float, y: (B,) int64. Safe to call inside a training loop:
    modes, hooks, requires_grad, BatchNorm buffers, `.grad` and the torch RNG are all as
    they were afterwards, so a resumed run stays bit-exact. Dead units in eval mode,
    gradients in train mode (as the step sees them).
    """
    # empty x: "no images", below; no frozen check (a second forward, and logged nowhere)
    dead = dead_units(model, x, batch_size=max(len(x), 1), frozen_check=False)
    flow = gradient_flow(model, [(x, y)], loss_fn)
    return {
        "dead_share": {l.name: round(l.dead_share, 4) for l in dead.layers},
        "sparsity": {l.name: round(l.sparsity, 4) for l in dead.layers},
        "grad_norm": {l.name: finite(l.l2) for l in flow.layers},
        "grad_ratio": finite(flow.ratio),
        "vanishing": flow.vanishing,
        "exploding": flow.exploding,
    }


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    fix: str


def findings(
    dead: DeadUnits | None = None,
    flow: GradientFlow | None = None,
    acts: ActivationStats | None = None,
) -> list[Finding]:
    """Turn the measurements into problems with what to try (notes §4.2-4.4)."""
    _check_results(dead, flow, acts)
    normed = set(dead.normed if dead else ())  # where the net normalises, as either pass saw
    normed |= set(flow.makeup.normed if flow and flow.makeup else ())
    out = [_dead_finding(l, normed) for l in (dead.flagged if dead else ())]
    out += _gradient_findings(flow) if flow else []
    for l in acts.layers if acts else ():
        # a channel gate at 0 or 1 shuts or keeps a channel: what it is for, not a fault
        if l.saturated is not None and l.saturated > 0.5 and not l.gate:
            out.append(_saturated_finding(l))
    return out


_RESULTS = (("dead", DeadUnits, "dead_units"), ("flow", GradientFlow, "gradient_flow"))
_RESULTS += (("acts", ActivationStats, "activation_stats"),)


def _check_results(*given: object) -> None:
    """Each argument None or its own result type; ExplainError naming the argument, the type it
    takes and the function that makes it."""
    for value, (arg, kind, fn) in zip(given, _RESULTS, strict=True):
        if value is not None and not isinstance(value, kind):
            takes = "; ".join(f"{a}={k.__name__} (from diagnose.{f})" for a, k, f in _RESULTS)
            raise ExplainError(
                f"findings: {arg}= takes a {kind.__name__} (from diagnose.{fn}), got a "
                f"{type(value).__name__}; the arguments are {takes}"
            )


def _saturated_finding(l: ActivationLayer) -> Finding:
    """A layer most of whose outputs sit at a bound, where the gradient is 0 or all but 0.
    A squasher (sigmoid, tanh, hardtanh, hardsigmoid) does so by its shape: a rectifier in
    hidden layers does not. A capped rectifier (ReLU6, a hardtanh with floor 0) is one
    already, saturating only at its cap: its pre-activations run too large, a matter of
    their scale; plain ReLU removes the cap, which low-precision inference may need."""
    found = ACTIVATIONS.get(l.kind)
    if found is not None and found.capped is not None:
        return Finding(
            "saturated",
            f"{l.name} ({l.kind}): {l.saturated:.0%} of outputs at its cap {l.max:g}, where "
            "its gradient is 0",
            "add BatchNorm before the activation, check the input normalisation and the "
            "weights' init scale; use ReLU if the cap is not needed (it serves low-precision "
            "inference)",
        )
    return Finding(
        "saturated",
        f"{l.name} ({l.kind}): {l.saturated:.0%} of outputs saturated",
        f"replace {l.kind} with ReLU in hidden layers, add BatchNorm before the activation",
    )


def _dead_finding(l, normed: set[str] = frozenset()) -> Finding:
    """A flagged layer's finding. Behind frozen weights (no weight before it trains) the
    learning rate, init and activation did not kill its units and cannot revive them: the
    advice for a trained layer would send the user after the wrong knobs. BatchNorm before
    the activation is advised only where the forward computes no normalisation before it
    (`normed`: the sites `dead_units` or `gradient_flow` saw one before); where it does, its
    bias (beta) is what to look at. Only a rectifier flat below 0 (the table's `zero_floor`:
    ReLU, ReLU6) kills a unit whose input is never positive; any other (GELU, SiLU, Mish,
    the leaky ones) is `_negative_finding`'s."""
    said = f"{l.name}: {l.dead}/{l.channels} channels never fire, sparsity {l.sparsity:.0%}"
    if l.frozen:
        return Finding(
            "dead-units",
            f"{said} (frozen: no weight nor running statistic before it trains, so training "
            "neither killed these units nor can revive them)",
            "if those layers are frozen on purpose, nothing to do (the dead channels pass "
            "nothing on); to use them, unfreeze the layers before it (requires_grad) and "
            "fine-tune them at a low learning rate",
        )
    found = ACTIVATIONS.get(l.kind)
    if found is not None and not found.zero_floor:
        return _negative_finding(l, l.name in normed)
    fix = "lower the learning rate (or warm it up), use LeakyReLU/ELU, use He (Kaiming) init"
    if l.name in normed:
        fix += (
            "; a normalisation already precedes it: a strongly negative bias (beta) there "
            "keeps its channels off"
        )
    else:
        fix += ", add BatchNorm before the activation"
    return Finding("dead-units", said, fix)


def _negative_finding(l, normed: bool) -> Finding:
    """Channels never positive after an activation that is not flat below 0 (GELU, SiLU,
    Mish, LeakyReLU, ELU ...): such a unit still gets a gradient there (GELU's is about
    -0.09 at x = -1 and -2, 0.13 at -0.5), so it is not dead as a ReLU's is and training
    can move it back; a leaky activation would change nothing. What keeps its inputs below
    0 on every image is the cause: the step size, the init scale, the normalisation before."""
    said = (
        f"{l.name} ({l.kind}): {l.dead}/{l.channels} channels never positive on any image, "
        f"sparsity {l.sparsity:.0%}"
    )
    fix = (
        f"{l.kind} is not flat below 0 as ReLU is: these units still get a gradient, so "
        "they are not dead in ReLU's sense and LeakyReLU/ELU would not help; something "
        "keeps their inputs below 0 on every image: lower the learning rate (or warm it "
        "up), check the init scale of the layer before"
    )
    if normed:
        fix += (
            "; a normalisation precedes it: a strongly negative bias there (its beta, or "
            "the bias of the linear or conv layer after it) keeps these units negative"
        )
    else:
        fix += ", add a normalisation (BatchNorm; LayerNorm in a transformer) before it"
    return Finding("dead-units", said, fix)


def _gradient_findings(flow: GradientFlow) -> list[Finding]:
    """No gradient at all, layers cut off from it, vanishing, exploding (notes §4.2)."""
    out = []
    if flow.no_gradient:
        out.append(
            Finding(
                "no-gradient",
                "no gradient flows: the loss's gradient is exactly 0 at all "
                f"{sum(not l.frozen for l in flow.layers)} trained weighted layers, so training "
                "cannot change the model",
                "look for units that are all dead (a too-high learning rate, a large negative "
                "bias), weights initialised to zero, or an output cut from the graph "
                "(.detach() or torch.no_grad() inside forward)",
            )
        )
    cut = [name for name in flow.cut_off if name not in flow.unused]
    if cut:
        out.append(
            Finding(
                "cut-off",
                f"no gradient reaches {len(cut)} weighted layer(s) ({_first(cut)}): the "
                "forward cuts them off from the loss, so training leaves them as they are",
                "if they are frozen on purpose, nothing to do; else look for torch.no_grad() "
                "or .detach() in forward, or torch.utils.checkpoint(..., use_reentrant=True) "
                "around layers whose input needs no gradient (the images): use_reentrant=False",
            )
        )
    if flow.unused:
        out.append(
            Finding(
                "cut-off",
                f"no gradient reaches {len(flow.unused)} weighted layer(s) "
                f"({_first(flow.unused)}) though the forward computes them with autograd: "
                "the logits do not use their output (or the forward .detach()es it), so "
                "training leaves them as they are",
                "if that branch is unused (a head the classifier skips, as Hugging Face's "
                "SigLIP classifier skips its vision model's attention-pooling head), leave it "
                "out of the forward, which computes it for nothing, or build the logits from "
                "it; if it is .detach()ed to freeze it, nothing to do",
            )
        )
    if flow.vanishing:
        out.append(
            Finding(
                "vanishing-gradients",
                f"first layer's gradient is {flow.ratio:.2g}x the last's",
                _vanishing_fix(flow),
            )
        )
    if flow.exploding:
        out.append(
            Finding(
                "exploding-gradients",
                f"gradient norms too large or not finite (first/last = {flow.ratio:.3g})",
                "lower the learning rate, clip gradients, add BatchNorm, check the input "
                "normalisation",
            )
        )
    return out


def _first(names: list[str] | tuple[str, ...], k: int = 4) -> str:
    """The first k names, with ' ...' where there are more."""
    return ", ".join(names[:k]) + (" ..." if len(names) > k else "")


def _vanishing_fix(flow: GradientFlow) -> str:
    """What to try for a vanishing gradient, by what the net computes (`Makeup`): replace
    the squashing activations it has, by name (their derivative is <= 0.25, or 0 at a
    bound, §4.2); add BatchNorm only where no normalisation is seen; then the cures that
    do not depend on the activation: residual connections, He init, fewer layers."""
    m = flow.makeup
    if m is None:  # not seen: the general advice
        return (
            "replace sigmoid/tanh with ReLU, add BatchNorm, add residual connections, use He init"
        )
    steps = []
    if not m.norms:
        steps.append(
            f"add BatchNorm after each conv ({'none seen' if m.hidden else 'it has none'})"
        )
    depth = sum(not l.frozen for l in flow.layers)
    steps += [
        "add residual connections if it has none",
        "use He (Kaiming) init",
        f"or use fewer layers (it has {depth} with weights)",
    ]
    replace, why = _squashers(m)
    return ", ".join([replace, *steps]) if replace else f"{why}: {', '.join(steps)}"


def _sites(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def _squashers(m: Makeup) -> tuple[str, str]:
    """("replace sigmoid (features.1, features.3) and tanh (fc.tanh()) with ReLU", "") for
    the squashing activations seen; else ("", why the activations are not the cause)."""
    by_kind: dict[str, list[str]] = {}
    for site, kind in m.saturating:
        by_kind.setdefault(kind, []).append(site)
    hidden = ", ".join(n or "the whole model" for n in m.hidden)
    unseen = f" (not looked into: {hidden}, TorchScript)" if m.hidden else ""
    if by_kind:
        named = " and ".join(f"{k} ({_sites(v)})" for k, v in by_kind.items())
        return f"replace {named} with ReLU{unseen}", ""
    if m.hidden:
        return (
            f"replace any sigmoid/tanh inside {hidden} (TorchScript, not looked into) with ReLU",
            "",
        )
    kinds = ", ".join(dict.fromkeys(k for _, k in m.activations))
    if not kinds:
        return "", "it computes no activation, so none saturates"
    return "", f"its activations ({kinds}) do not saturate"
