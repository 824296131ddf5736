"""Statistics of every activation site: dead and sleeping units (notes §4.3) and the mean,
spread and saturation of each activation's output (§4.2).

Activations are found where they are computed (`cnnlab.inspect.ActivationSites`); what each
one does (ReLU family, saturation band) comes from `cnnlab.design.activations`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from cnnlab.design.activations import ACTIVATIONS, Activation
from cnnlab.diagnose.jsonable import jsonable
from cnnlab.diagnose.makeup import Seen
from cnnlab.errors import DataError, ExplainError
from cnnlab.inspect import (
    OutputSelector,
    batches,
    check_images,
    check_values,
    device_of,
    forward,
    preserved,
    unwrap,
)
from cnnlab.inspect.progress import Progress, batch_count

# Views of the activation table, under the names `cnnlab.diagnose` has always exported.
RELU_FAMILY = frozenset(a.name for a in ACTIVATIONS.values() if a.rectifier)
SATURATION = {a.name: a.band for a in ACTIVATIONS.values() if a.band is not None}


# --- recording activations ---------------------------------------------------------------------


class _Site:
    """Running statistics of one activation site, accumulated batch by batch."""

    def __init__(self, activation: Activation, channels: int, moments: bool) -> None:
        self.activation = activation
        self.kind = activation.name
        self.channels = channels
        self.moments = moments  # mean/std/range/saturation too (activation_stats), or not
        self.count = 0
        self.nonpositive = 0
        self.saturated = 0
        self.mean = 0.0  # of every value so far (moments), and their summed squared
        self.m2 = 0.0  # deviations from it: std = sqrt(m2 / count)
        self.low = math.inf
        self.high = -math.inf
        self.ever_positive = torch.zeros(channels, dtype=torch.bool)
        self.gate = False  # one value per channel of a map: (N, C, 1, 1), `is_gate`

    def add(self, y: Tensor) -> None:
        y = y.detach()
        self.gate = self.kind in GATES and is_gate(tuple(y.shape))
        # (N, C, ...) -> (C,): channel c is dead if no input, at no position, makes it > 0
        others = [0, *range(2, y.ndim)]
        self.ever_positive |= (y.amax(dim=others) > 0).cpu()
        # count_nonzero of a mask, not mask.sum() (a bool sum goes through int64): 7x faster
        self.nonpositive += int(torch.count_nonzero(y <= 0))
        if not self.moments:
            self.count += y.numel()
            return
        batch = channel_moments(y, others)
        self.count, self.mean, self.m2 = pooled((self.count, self.mean, self.m2), batch)
        low, high = torch.aminmax(y)
        self.low, self.high = min(self.low, float(low)), max(self.high, float(high))
        # the site's own Activation: a hardtanh's or ReLU6's bounds are its min_val, max_val;
        # a ReLU6 counts at its cap alone (its floor 0 is the dead-unit statistics' nonpositive)
        if self.activation.band is not None:
            self.saturated += int(torch.count_nonzero(self.activation.saturated(y)))


GATES = frozenset({"sigmoid", "hardsigmoid"})  # the activations a gate squashes with: [0, 1]


def is_gate(shape: tuple[int, ...]) -> bool:
    """An output (N, C, 1, 1, ...) of one value per channel of a map: a squeeze-and-excitation
    gate (`x * sigmoid(s)`, EfficientNet's and MobileNetV3's), which scales each channel by a
    share in [0, 1]: at 0 or 1 it shuts or keeps a channel, what a gate is for."""
    return len(shape) >= 3 and math.prod(shape[2:]) == 1


Moments = tuple[int, float, float]  # (count, mean, summed squared deviations from it)


def channel_moments(y: Tensor, others: list[int]) -> Moments:
    """The moments of all of y's values, pooled from each channel's: per channel a float32
    mean (a float64 model's: float64), then the norm of the deviations from it (a second
    pass on centred values, not sum(y²) − n·mean², which cancels where the std is small
    against the mean); the
    channels pooled in float64 (`pooled`). 4x faster than float64 sums of y and y² (80 and
    114 ms on 16.7 M values, one thread), and exact to 1e-6 for a mean 10⁴ times the std."""
    per = y.numel() // y.shape[1]  # values per channel
    dtype = torch.promote_types(y.dtype, torch.float32)  # (a float64 model's stays so)
    means = y.mean(dim=others, keepdim=True, dtype=dtype)
    d = y - means
    # the corrected two-pass form: the deviations' own sum fixes the float32 mean's rounding
    drift = d.sum(dim=others, dtype=dtype).double() / per
    m2 = torch.linalg.vector_norm(d, dim=others, dtype=dtype).double().square() - per * drift**2
    means = means.flatten().double() + drift
    mean = float(means.mean())
    return y.numel(), mean, float(m2.sum() + per * (means - mean).square().sum())


def pooled(a: Moments, b: Moments) -> Moments:
    """Two sets of values' (count, mean, M2) as one (Chan et al.'s parallel update):
    n = nₐ + n_b, mean = meanₐ + δ·n_b/n, M2 = M2ₐ + M2_b + δ²·nₐ·n_b/n with δ = mean_b − meanₐ."""
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    if n == 0:
        return 0, 0.0, 0.0
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ExplainError(f"{name} is a share of units, from 0 to 1; got {value}")


def _record(
    model: nn.Module,
    data,
    batch_size: int,
    train: bool,
    moments: bool = False,
    progress: Progress | None = None,
    what: str = "",
    output: OutputSelector = None,
    trains: dict[str, bool] | None = None,
    normed: list[str] | None = None,
) -> tuple[dict[str, _Site], int]:
    """Run data through the model (no grad), accumulating statistics per activation site;
    progress(batches done, batches, what) before the first batch and after each.
    trains: filled with {site: whether a weight that trains reaches it} (`_probe_trains`)
    when some parameter requires grad; left empty when none does (a model frozen whole).
    normed: filled with the sites a normalisation is computed before (`Makeup.normed`)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExplainError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    sites: dict[str, _Site] = {}
    probing: list[bool] = []  # non-empty while the probe's forward runs

    def on_call(name: str, activation: Activation, y: Tensor) -> None:
        if probing:  # computed with autograd off, it is not known (see _probe_trains)
            may = y.requires_grad or not torch.is_grad_enabled()
            trains[name] = trains.get(name, False) or may
            return
        site = sites.get(name)
        if site is None:
            site = sites[name] = _Site(activation, y.shape[1], moments)
        if y.shape[1] != site.channels:
            raise DataError(f"activation {name}: channel count changed between batches")
        site.add(y)

    model = check_values(unwrap(model))  # a meta model has no values to run
    flags = [(p, p.requires_grad) for p in model.parameters()]  # before preserved freezes them
    probe = trains is not None and any(flag for _, flag in flags)
    device, n, total = device_of(model), 0, batch_count(data, batch_size)
    if progress is not None:
        progress(0, total, what)
    with preserved(model, train=train), torch.no_grad(), Seen(model, on_call) as seen:
        for done, (x, _) in enumerate(batches(data, batch_size), 1):
            x = check_images(x, flat=True).to(device)
            if probe and done == 1:
                _probe_trains(model, x[:2], flags, output, train, probing, trains)
            forward(model, x, output)
            n += len(x)
            if progress is not None:
                progress(done, total, what)
    if n == 0:
        raise DataError("data: no images (an empty tensor or iterable)")
    if normed is not None:
        normed.extend(seen.makeup(()).normed)
    return sites, n


def _probe_trains(model, x: Tensor, flags, output, train: bool, probing: list, trains) -> None:
    """One eval-mode forward of a few images with autograd on and each parameter's own
    requires_grad: a site's output then requires grad exactly when some weight that trains
    lies before it. Without one (a frozen stem), training can neither kill nor revive its
    units. A site computed with autograd off is left unmarked: under the user's
    torch.no_grad() it is cut off, but a reentrant torch.utils.checkpoint runs its block so
    too, and trains it in the backward. Eval mode: no BatchNorm statistic moves, no dropout
    draw. A norm layer that tracks running statistics counts as trained: training in train
    mode moves them even behind frozen weights (a frozen pretrained backbone's BatchNorm), and
    that can kill units. A forward that fails so leaves the sites unmarked."""
    for p, flag in flags:
        p.requires_grad_(flag)
    moved = torch.zeros((), requires_grad=True)  # adds 0: marks what follows as trained
    hooks = [
        m.register_forward_hook(lambda module, args, y: y + moved)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
    ]
    model.eval()
    probing.append(True)
    try:
        with torch.enable_grad():
            forward(model, x, output)
    except Exception:  # the probe is optional: an in-place op on a leaf that now requires
        # grad, a forward that asserts no grad; the main pass says what is wrong, if anything
        trains.clear()
    finally:
        probing.clear()
        for hook in hooks:
            hook.remove()
        model.train(train)
        for p, _ in flags:
            p.requires_grad_(False)


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
    """
    _check_fraction("threshold", threshold)
    _check_fraction("sparsity_threshold", sparsity_threshold)
    trains: dict[str, bool] | None = {} if frozen_check else None
    normed: list[str] = []
    sites, n = _record(
        model, data, batch_size, train, progress=progress, what="dead units", output=output,
        trains=trains, normed=normed,
    )  # fmt: skip
    layers = []
    for name, site in sites.items():
        if not site.activation.rectifier:
            continue
        dead = (~site.ever_positive).nonzero().flatten().tolist()
        sparsity = site.nonpositive / site.count
        flagged = len(dead) / site.channels > threshold or sparsity > sparsity_threshold
        frozen = bool(trains) and not trains.get(name, True)
        layers.append(
            DeadLayer(
                name, site.kind, site.channels, len(dead), tuple(dead), sparsity, flagged, frozen
            )
        )
    others = tuple(f"{name} ({s.kind})" for name, s in sites.items() if not s.activation.rectifier)
    hidden = hidden_modules(model)
    return DeadUnits(tuple(layers), n, threshold, sparsity_threshold, hidden, others, tuple(normed))


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
    sites, n = _record(model, data, batch_size, train, True, progress, what, output)
    layers = []
    for name, s in sites.items():
        mean, std = s.mean, math.sqrt(s.m2 / (s.count - STD_CORRECTION))
        saturated = s.saturated / s.count if s.activation.band is not None else None
        layers.append(ActivationLayer(name, s.kind, mean, std, s.low, s.high, saturated, s.gate))
    return ActivationStats(tuple(layers), n, hidden=hidden_modules(model))
