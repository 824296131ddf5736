"""Statistics of every activation site: dead and sleeping units (notes §4.3) and the mean,
spread and saturation of each activation's output (§4.2).

Activations are found where they are computed (`cnnlab.inspect.ActivationSites`); what each
one does (ReLU family, saturation band) comes from `cnnlab.design.activations`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from cnnlab.design.activations import ACTIVATIONS
from cnnlab.diagnose.jsonable import jsonable
from cnnlab.diagnose.recording import (  # noqa: F401 - GATES, channel_moments, is_gate, pooled: as before
    GATES,
    Recording,
    _check_samples,
    _record,
    channel_moments,
    is_gate,
    pooled,
)
from cnnlab.errors import ExplainError
from cnnlab.inspect import OutputSelector, unwrap
from cnnlab.inspect.progress import Progress

# Views of the activation table, under the names `cnnlab.diagnose` has always exported.
RELU_FAMILY = frozenset(a.name for a in ACTIVATIONS.values() if a.rectifier)
SATURATION = {a.name: a.band for a in ACTIVATIONS.values() if a.band is not None}


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ExplainError(f"{name} is a share of units, from 0 to 1; got {value}")


def hidden_modules(model: nn.Module) -> tuple[str, ...]:
    """Names of the outermost TorchScript modules of `model` ("": the model scripted whole):
    the interpreter runs their calls where neither a hook nor a torch-function mode sees them,
    so activations inside are absent from any statistics recorded around them."""
    named = list(unwrap(model).named_modules())
    scripted = [n for n, m in named if isinstance(m, torch.jit.ScriptModule)]
    return tuple(n for n in scripted if not any(_inside(n, s) for s in scripted if s != n))


def _inside(name: str, outer: str) -> bool:
    return outer == "" or name.startswith(f"{outer}.")


def hidden_line(names: tuple[str, ...]) -> str:
    """One line naming the modules not looked into ("" if none)."""
    if not names:
        return ""
    shown = ", ".join(n or "the whole model" for n in names)
    return f"not looked into: {shown} (TorchScript runs its calls where no hook sees them)"


# --- dead units (§4.3) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLayer:
    """One ReLU-family activation site: how many channels never fire, and how sparse it is."""

    name: str
    kind: str
    channels: int
    dead: int
    dead_channels: tuple[int, ...]
    sparsity: float  # share of activations <= 0 over all inputs, positions and channels
    flagged: bool
    # no weight that trains nor norm whose running statistics move lies before it (frozen
    # layers): its dead units were made so, and can be revived, by no training step
    frozen: bool = False

    @property
    def dead_share(self) -> float:
        return self.dead / self.channels


@dataclass(frozen=True)
class DeadUnits:
    layers: tuple[DeadLayer, ...]
    samples: int
    threshold: float
    sparsity_threshold: float
    hidden: tuple[str, ...] = ()  # TorchScript modules whose activations were not seen
    # the activations computed that are no rectifier ("1 (tanh)"): no unit of theirs is
    # dead in this sense (activation_stats measures their saturation)
    others: tuple[str, ...] = ()
    # the sites a normalisation is computed before, since the activation before (conv -> BN
    # -> ReLU): the advice for their dead units is that norm's bias, not adding one
    normed: tuple[str, ...] = ()

    @property
    def flagged(self) -> tuple[DeadLayer, ...]:
        return tuple(layer for layer in self.layers if layer.flagged)

    def to_dict(self) -> dict:
        layers = [{**asdict(layer), "dead_share": layer.dead_share} for layer in self.layers]
        for layer in layers:
            layer["dead_channels"] = list(layer["dead_channels"])
        return {
            "samples": self.samples,
            "threshold": self.threshold,
            "sparsity_threshold": self.sparsity_threshold,
            "layers": layers,
            "hidden": list(self.hidden),
        }

    def __str__(self) -> str:
        lines = [f"dead units on {self.samples} inputs (flag: dead share > {self.threshold:.0%})"]
        for l in self.layers:
            flag = ("  <- flagged" if l.flagged else "") + ("  (frozen)" if l.frozen else "")
            lines.append(
                f"  {l.name:<24} {l.kind:<10} dead {l.dead:>4}/{l.channels:<4} "
                f"sparsity {l.sparsity:6.1%}{flag}"
            )
        if not self.layers:  # no rectifier: say so, rather than a table of no rows
            others = f", only {', '.join(self.others)}" if self.others else ""
            lines.append(
                f"  the model computes no ReLU-family activation{others}: no unit of it can "
                "die (diagnose.activation_stats measures saturation)"
            )
        if self.hidden:
            lines.append(f"  {hidden_line(self.hidden)}")
        return "\n".join(lines)


def dead_units(
    model: nn.Module,
    data,
    threshold: float = 0.1,
    sparsity_threshold: float = 0.95,
    *,
    batch_size: int = 256,
    train: bool = False,
    output: OutputSelector = None,
    progress: Progress | None = None,
    frozen_check: bool = True,
    activations: Recording | None = None,
) -> DeadUnits:
    """Dead and sleeping units after every ReLU-family activation (notes §4.3).

    A channel is *dead* when its output is never > 0 for any input of `data` at any spatial
    position: for ReLU/ReLU6 that means always exactly 0, so no gradient reaches it. For
    activations with a non-flat negative side (LeakyReLU, PReLU, ELU, SELU, GELU, SiLU, ...)
    the same rule "never positive" is used: such a unit still passes a small gradient, but it
    carries no positive signal. Sparsity is the share of activations <= 0. A layer is flagged
    when its dead share exceeds `threshold` or its sparsity exceeds `sparsity_threshold`.

    data: a float Tensor (N, C, H, W), already normalised, an (images, labels) pair, an
    object with such .images and .labels, or an iterable of (x, y) batches (labels are not
    used). A data set's raw uint8 ImageSet is refused: normalise it first (Run.preprocess).
    The model runs in eval mode (`train=True`: train mode, e.g. batch-statistics BatchNorm).
    Activations inside a TorchScript module are not seen: `.hidden` names those modules.
    output: the logits in a model's output that is not a (B, K) tensor (a key, an index or a
    function, as for `explain.saliency`): a dict of Hugging Face's, a (logits, aux) tuple.
    progress: progress(batches done, batches, "dead units") after each batch.
    frozen_check: mark a layer `frozen` when no parameter that requires grad lies before it
    (a frozen stem), nor a norm layer tracking running statistics, found by one forward of two
    images with autograd on; none is marked when no parameter requires grad (a model frozen
    whole, as for inference), nor one computed with autograd off (under torch.no_grad(), or in
    a reentrant checkpoint, which trains).
    activations: a `Recording` of data already made (its forwards shared, e.g. with a
    `Capture`), read instead of data; its own train, output and frozen_check hold. The
    result equals dead_units' own pass over the same batches.
    """
    _check_fraction("threshold", threshold)
    _check_fraction("sparsity_threshold", sparsity_threshold)
    rec = activations or _record(
        model, data, batch_size, train, progress=progress, what="dead units", output=output,
        frozen_check=frozen_check,
    )  # fmt: skip
    _check_samples(rec.samples)
    layers = tuple(
        _dead_layer(name, site, rec.trains, threshold, sparsity_threshold)
        for name, site in rec.sites.items()
        if site.activation.rectifier
    )
    others = tuple(f"{n} ({s.kind})" for n, s in rec.sites.items() if not s.activation.rectifier)
    hidden, normed = hidden_modules(model), tuple(rec.normed)
    return DeadUnits(layers, rec.samples, threshold, sparsity_threshold, hidden, others, normed)


def _dead_layer(name: str, site, trains, threshold: float, sparsity_threshold: float) -> DeadLayer:
    """One rectifier site's dead channels (never > 0), sparsity and flags."""
    dead = (~site.ever_positive).nonzero().flatten().tolist()
    sparsity = site.nonpositive / site.count
    flagged = len(dead) / site.channels > threshold or sparsity > sparsity_threshold
    frozen = bool(trains) and not trains.get(name, True)
    return DeadLayer(
        name, site.kind, site.channels, len(dead), tuple(dead), sparsity, flagged, frozen
    )


# --- activation statistics (§4.2) ---------------------------------------------------------------

# The std of every value seen is the population's (÷ n), as the data's normalisation std.
STD_CORRECTION = 0


@dataclass(frozen=True)
class ActivationLayer:
    name: str
    kind: str
    mean: float
    std: float
    min: float
    max: float
    saturated: float | None  # share within SATURATION[kind] of a bound; None if unbounded
    gate: bool = False  # (N, C, 1, 1): a channel gate (`is_gate`), saturated by design


@dataclass(frozen=True)
class ActivationStats:
    layers: tuple[ActivationLayer, ...]
    samples: int
    bands: dict = field(default_factory=lambda: dict(SATURATION))
    hidden: tuple[str, ...] = ()  # TorchScript modules whose activations were not seen

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "saturation_bands": dict(self.bands),
            "std_correction": STD_CORRECTION,
            "layers": [{k: jsonable(v) for k, v in asdict(l).items()} for l in self.layers],
            "hidden": list(self.hidden),
        }

    def __str__(self) -> str:
        lines = [
            f"activation statistics on {self.samples} inputs (std: population, "
            f"correction={STD_CORRECTION}, as x.std(correction={STD_CORRECTION}))"
        ]
        for l in self.layers:
            sat = "" if l.saturated is None else f" saturated {l.saturated:6.1%}"
            lines.append(f"  {l.name:<24} {l.kind:<10} mean {l.mean:+.3f} std {l.std:.3f}{sat}")
        if self.hidden:
            lines.append(f"  {hidden_line(self.hidden)}")
        return "\n".join(lines)


def activation_stats(
    model: nn.Module,
    data,
    *,
    batch_size: int = 256,
    train: bool = False,
    output: OutputSelector = None,
    progress: Progress | None = None,
) -> ActivationStats:
    """Mean, std, range and saturated share of every activation's output (notes §4.2).

    std: the population std of all the values a layer outputs, sqrt(Σ(y − mean)² / n), as
    `y.std(correction=0)` (torch's `y.std()` divides by n − 1: larger by sqrt(n / (n − 1)),
    1.0001 at n = 5,000 values); the data normalisation's std is the population one too.

    Saturated: sigmoid outputs within 0.01 of 0 or 1, tanh outputs within 0.01 of -1 or +1
    (where the derivative is below about 0.01 and 0.02: the gradient all but stops);
    hardtanh/hardsigmoid exactly at a bound (a hardtanh's own min_val/max_val); ReLU6 exactly
    at its cap (max_val, 6 by default; its floor 0 is the dead units' statistic). The other
    ReLU-family outputs are unbounded above: None. A sigmoid or hardsigmoid site of one value
    per channel of a map, (N, C, 1, 1), is marked `gate` (`is_gate`: a squeeze-and-excitation
    gate, saturated by design; `advice.findings` does not flag it); the activation of the
    squeeze before it (an EfficientNet's SiLU on (N, C', 1, 1)) is none.
    data: a float Tensor (N, C, H, W), an (images, labels) pair, an object with float .images
    and .labels, or an iterable of (x, y) batches; eval mode by default. Activations inside
    a TorchScript module are not seen: `.hidden` names those modules.
    output: the logits in an output that is not a (B, K) tensor, as for `dead_units`.
    progress: progress(batches done, batches, "activation statistics") after each batch.
    """
    what = "activation statistics"
    rec = _record(model, data, batch_size, train, True, progress, what, output)
    sites, n = rec.sites, rec.samples
    layers = []
    for name, s in sites.items():
        mean, std = s.mean, math.sqrt(s.m2 / (s.count - STD_CORRECTION))
        saturated = s.saturated / s.count if s.activation.band is not None else None
        layers.append(ActivationLayer(name, s.kind, mean, std, s.low, s.high, saturated, s.gate))
    return ActivationStats(tuple(layers), n, hidden=hidden_modules(model))
