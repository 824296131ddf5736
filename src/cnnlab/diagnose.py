"""Diagnose a CNN: dead ReLU units, gradient flow, activation statistics (notes §4.2-4.3).

Works on any `nn.Module` classifier. Activations are found where they are *computed*, not
by module type alone: a `TorchFunctionMode` sees every call of an activation function
(`nn.ReLU(inplace=True)`, `F.relu`, `x.relu()`, `torch.sigmoid`, ...) while per-module hooks
say which module's forward made the call. A site is named

* after its module when an activation module made it (`features.2`, `layer1.0.relu`),
* `<module>.<kind>()` for a functional call inside a module's forward (`relu()` at the top
  level, `block.gelu()` inside `block`),
* with `#k` appended for the k-th call of the same site in one forward (torchvision's
  `BasicBlock` calls its one `self.relu` twice: `layer1.0.relu`, `layer1.0.relu#2`).

Every function restores what it changes: train/eval mode of every module, hooks (all removed),
`requires_grad`, buffers (BatchNorm running statistics) and the torch RNG state; gradients are
taken with `torch.autograd.grad`, so no parameter's `.grad` is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnnlab.errors import CnnlabError

# --- activation registry: function -> kind ---------------------------------------------------

# Zero floor: output is exactly 0 for every input <= 0 (the notes' ReLU, §4.2).
_ZERO_FLOOR = {"relu", "relu6"}
# Negative side is not flat (leaky, ELU, GELU, ...): "dead" means never positive (see dead_units).
_SIGNED = {
    "leaky_relu",
    "prelu",
    "rrelu",
    "elu",
    "celu",
    "selu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
}
RELU_FAMILY = frozenset(_ZERO_FLOOR | _SIGNED)

# Saturating activations and the band, in output units, counted as saturated (§4.2).
SATURATION = {"sigmoid": 0.01, "tanh": 0.01, "hardtanh": 0.0, "hardsigmoid": 0.0}


def _registry() -> dict[Callable, str]:
    table: dict[Callable, str] = {}

    def add(kind: str, *names: str) -> None:
        for owner in (F, torch, Tensor):
            for name in names:
                fn = getattr(owner, name, None)
                if fn is not None:
                    table[fn] = kind

    add("relu", "relu", "relu_")
    add("relu6", "relu6")
    add("hardtanh", "hardtanh", "hardtanh_")  # ReLU6 is hardtanh(x, 0, 6): resolved at call
    add("leaky_relu", "leaky_relu", "leaky_relu_")
    add("prelu", "prelu")
    add("rrelu", "rrelu", "rrelu_")
    add("elu", "elu", "elu_")
    add("celu", "celu", "celu_")
    add("selu", "selu", "selu_")
    add("gelu", "gelu")
    add("silu", "silu")
    add("mish", "mish")
    add("hardswish", "hardswish")
    add("sigmoid", "sigmoid", "sigmoid_")
    add("hardsigmoid", "hardsigmoid")
    add("tanh", "tanh", "tanh_")
    return table


_ACTIVATION_FUNCTIONS = _registry()
# Modules whose forward is just one activation call: their sites take the module's own name.
ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Hardswish, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.Hardtanh,
)  # fmt: skip


def _kind_of(func: Callable, args: tuple, kwargs: dict) -> str | None:
    kind = _ACTIVATION_FUNCTIONS.get(func)
    if kind == "hardtanh":
        low = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        return "relu6" if low == 0 else "hardtanh"
    return kind


# --- recording activations ---------------------------------------------------------------------


class _Site:
    """Running statistics of one activation site, accumulated batch by batch."""

    def __init__(self, kind: str, channels: int, moments: bool) -> None:
        self.kind = kind
        self.channels = channels
        self.moments = moments  # mean/std/range/saturation too (activation_stats), or not
        self.count = 0
        self.nonpositive = 0
        self.saturated = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.ever_positive = torch.zeros(channels, dtype=torch.bool)

    def add(self, y: Tensor) -> None:
        y = y.detach()
        # (N, C, ...) -> (C,): channel c is dead if no input, at no position, makes it > 0
        others = [0, *range(2, y.ndim)]
        self.ever_positive |= (y.amax(dim=others) > 0).cpu()
        self.count += y.numel()
        self.nonpositive += int((y <= 0).sum())
        if not self.moments:
            return
        self.total += float(y.sum(dtype=torch.float64))
        self.total_sq += float(torch.square(y).sum(dtype=torch.float64))
        low, high = torch.aminmax(y)
        self.low, self.high = min(self.low, float(low)), max(self.high, float(high))
        band = SATURATION.get(self.kind)
        if band is not None:
            self.saturated += int(self._saturated(y, band).sum())

    def _saturated(self, y: Tensor, band: float) -> Tensor:
        if self.kind in ("sigmoid", "hardsigmoid"):
            return (y <= band) | (y >= 1 - band)
        return y.abs() >= 1 - band  # tanh, hardtanh: bounds +-1


class _Recorder(TorchFunctionMode):
    """Sees every activation call made while active; names it by the innermost module."""

    def __init__(self, model: nn.Module, on_call: Callable[[str, str, Tensor], None]) -> None:
        super().__init__()
        self.on_call = on_call
        self.stack: list[tuple[str, nn.Module]] = []
        self.calls: dict[str, int] = {}
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(name, module)))
            self.handles.append(module.register_forward_hook(self._leave, always_call=True))
        self.root = model

    def _enter(self, name: str, module: nn.Module) -> Callable:
        def hook(mod, args):
            if mod is self.root and not self.stack:
                self.calls.clear()  # a new forward pass: call counters restart
            self.stack.append((name, module))

        return hook

    def _leave(self, mod, args, output):
        if self.stack:
            self.stack.pop()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _site_name(self, kind: str) -> str:
        name, module = self.stack[-1] if self.stack else ("", None)
        if not isinstance(module, ACTIVATION_MODULES):
            name = f"{name}.{kind}()" if name else f"{kind}()"
        k = self.calls.get(name, 0) + 1
        self.calls[name] = k
        return name if k == 1 else f"{name}#{k}"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        kind = _kind_of(func, args, kwargs)
        if kind is not None and isinstance(result, Tensor) and result.ndim >= 2:
            self.on_call(self._site_name(kind), kind, result)
        return result


# --- preserving the model's state ----------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The module that holds the weights: DDP and torch.compile wrappers are looked through."""
    while isinstance(getattr(model, "module", None), nn.Module) and isinstance(
        model, nn.parallel.DistributedDataParallel
    ):
        model = model.module
    return getattr(model, "_orig_mod", model)


@contextmanager
def _preserved(model: nn.Module, train: bool) -> Iterator[None]:
    """Set train/eval mode; restore every module's mode, buffers and the RNG state afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    model.train(train)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)  # BatchNorm running stats moved by a train-mode forward
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _images(x) -> Tensor:
    """x itself if it is a float tensor (N, C, H, W) or (N, F); CnnlabError naming the fix."""
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        what = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise CnnlabError(
            f"data: expected float images (N, C, H, W), got {what}; normalise images first "
            "(e.g. run.preprocess)"
        )
    return x


def _batches(data, batch_size: int, labels: bool = False) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield (x, y) from float images (N, C, H, W), an (images, labels) pair, an object with
    normalised float .images and .labels, or an iterable of (x, y) batches or x: the data
    explain accepts, read by the same helper (`cnnlab.inspect.capture.batches`)."""
    from cnnlab.inspect.capture import batches

    if isinstance(data, Tensor):
        _images(data)
        if labels:
            raise CnnlabError("data: gradient_flow needs labels; pass an iterable of (x, y)")
    for x, y in batches(data, batch_size):
        if labels and y is None:
            raise CnnlabError("data: gradient_flow needs (x, y) batches with labels")
        yield _images(x), y


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise CnnlabError(f"{name} is a share of units, from 0 to 1; got {value}")


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) as logits; a model that cannot take x is the user's input, said in one line."""
    try:
        out = model(x)
    except RuntimeError as e:  # shape/channel/dtype mismatch inside torch ops
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CnnlabError(
            f"data: the model cannot run on images of shape {tuple(x.shape)} ({first}); give "
            "images with the channels and size the model was trained on"
        ) from e
    return _logits(out)


def _logits(out) -> Tensor:
    if not isinstance(out, Tensor):
        raise CnnlabError(
            f"model returned {type(out).__name__}, not a logits tensor (B, classes); "
            "wrap it so forward returns the logits"
        )
    return out


def _record(
    model: nn.Module, data, batch_size: int, train: bool, moments: bool = False
) -> tuple[dict[str, _Site], int]:
    """Run data through the model (no grad), accumulating statistics per activation site."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CnnlabError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    sites: dict[str, _Site] = {}

    def on_call(name: str, kind: str, y: Tensor) -> None:
        site = sites.get(name)
        if site is None:
            site = sites[name] = _Site(kind, y.shape[1], moments)
        if y.shape[1] != site.channels:
            raise CnnlabError(f"activation {name}: channel count changed between batches")
        site.add(y)

    model = _unwrap(model)
    device, n = _device(model), 0
    recorder = _Recorder(model, on_call)
    try:
        with _preserved(model, train), torch.no_grad(), recorder:
            for x, _ in _batches(data, batch_size):
                _forward(model, x.to(device))
                n += len(x)
    finally:
        recorder.remove()
    if n == 0:
        raise CnnlabError("data: no images (an empty tensor or iterable)")
    return sites, n


def _finite(value: float) -> float | None:
    """JSON-ready float: inf and nan become None (the flags say what happened)."""
    return float(value) if math.isfinite(value) else None


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

    @property
    def dead_share(self) -> float:
        return self.dead / self.channels


@dataclass(frozen=True)
class DeadUnits:
    layers: tuple[DeadLayer, ...]
    samples: int
    threshold: float
    sparsity_threshold: float

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
        }

    def __str__(self) -> str:
        lines = [f"dead units on {self.samples} inputs (flag: dead share > {self.threshold:.0%})"]
        for l in self.layers:
            flag = "  <- flagged" if l.flagged else ""
            lines.append(
                f"  {l.name:<24} {l.kind:<10} dead {l.dead:>4}/{l.channels:<4} "
                f"sparsity {l.sparsity:6.1%}{flag}"
            )
        return "\n".join(lines)


def dead_units(
    model: nn.Module,
    data,
    threshold: float = 0.1,
    sparsity_threshold: float = 0.95,
    *,
    batch_size: int = 256,
    train: bool = False,
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
    """
    _check_fraction("threshold", threshold)
    _check_fraction("sparsity_threshold", sparsity_threshold)
    sites, n = _record(model, data, batch_size, train)
    layers = []
    for name, site in sites.items():
        if site.kind not in RELU_FAMILY:
            continue
        dead = (~site.ever_positive).nonzero().flatten().tolist()
        sparsity = site.nonpositive / site.count
        flagged = len(dead) / site.channels > threshold or sparsity > sparsity_threshold
        layers.append(
            DeadLayer(name, site.kind, site.channels, len(dead), tuple(dead), sparsity, flagged)
        )
    return DeadUnits(tuple(layers), n, threshold, sparsity_threshold)


# --- activation statistics (§4.2) ---------------------------------------------------------------


@dataclass(frozen=True)
class ActivationLayer:
    name: str
    kind: str
    mean: float
    std: float
    min: float
    max: float
    saturated: float | None  # share within SATURATION[kind] of a bound; None if unbounded


@dataclass(frozen=True)
class ActivationStats:
    layers: tuple[ActivationLayer, ...]
    samples: int
    bands: dict = field(default_factory=lambda: dict(SATURATION))

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "saturation_bands": dict(self.bands),
            "layers": [{k: _jsonable(v) for k, v in asdict(l).items()} for l in self.layers],
        }

    def __str__(self) -> str:
        lines = [f"activation statistics on {self.samples} inputs"]
        for l in self.layers:
            sat = "" if l.saturated is None else f" saturated {l.saturated:6.1%}"
            lines.append(f"  {l.name:<24} {l.kind:<10} mean {l.mean:+.3f} std {l.std:.3f}{sat}")
        return "\n".join(lines)


def _jsonable(value):
    return _finite(value) if isinstance(value, float) else value


def activation_stats(
    model: nn.Module, data, *, batch_size: int = 256, train: bool = False
) -> ActivationStats:
    """Mean, std, range and saturated share of every activation's output (notes §4.2).

    Saturated: sigmoid outputs within 0.01 of 0 or 1, tanh outputs within 0.01 of -1 or +1
    (where the derivative is below about 0.01 and 0.02: the gradient all but stops);
    hardtanh/hardsigmoid exactly at a bound. ReLU-family outputs are unbounded above: None.
    data: a float Tensor (N, C, H, W), an (images, labels) pair, an object with float .images
    and .labels, or an iterable of (x, y) batches; eval mode by default.
    """
    sites, n = _record(model, data, batch_size, train, moments=True)
    layers = []
    for name, s in sites.items():
        mean = s.total / s.count
        std = math.sqrt(max(s.total_sq / s.count - mean * mean, 0.0))
        saturated = s.saturated / s.count if s.kind in SATURATION else None
        layers.append(ActivationLayer(name, s.kind, mean, std, s.low, s.high, saturated))
    return ActivationStats(tuple(layers), n)


# --- gradient flow (§4.2) ------------------------------------------------------------------------


@dataclass(frozen=True)
class GradLayer:
    """Statistics of d loss / d weight for one module that owns a `weight` parameter."""

    name: str
    kind: str  # module class name
    mean_abs: float
    l2: float
    max: float
    numel: int


@dataclass(frozen=True)
class GradientFlow:
    layers: tuple[GradLayer, ...]  # forward order
    ratio: float  # L2 of the first conv/linear weight gradient / that of the last
    vanishing: bool
    exploding: bool
    samples: int
    vanish_ratio: float
    explode_norm: float

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "ratio": _finite(self.ratio),
            "vanishing": self.vanishing,
            "exploding": self.exploding,
            "vanish_ratio": self.vanish_ratio,
            "explode_norm": self.explode_norm,
            "layers": [{k: _jsonable(v) for k, v in asdict(l).items()} for l in self.layers],
        }

    def __str__(self) -> str:
        flags = [
            f for f, on in (("VANISHING", self.vanishing), ("EXPLODING", self.exploding)) if on
        ]
        head = f"gradient flow on {self.samples} inputs: first/last = {self.ratio:.3g}"
        lines = [head + (f"  ({', '.join(flags)})" if flags else "")]
        for l in self.layers:
            lines.append(f"  {l.name:<24} {l.kind:<12} |g| {l.mean_abs:.3e}  L2 {l.l2:.3e}")
        return "\n".join(lines)


def _weighted_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m._parameters.get("weight"), nn.Parameter)
    }


def gradient_flow(
    model: nn.Module,
    batches,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    *,
    vanish_ratio: float = 1e-3,
    explode_norm: float = 1e3,
    train: bool = True,
) -> GradientFlow:
    """Per-layer gradient of the loss w.r.t. each module's weight (notes §4.2).

    The gradient is that of the mean loss over all samples of `batches` (an iterable of
    (x, y), or one (x, y) tuple), taken with `torch.autograd.grad`: `.grad` is untouched.
    Per module that owns a `weight`, in forward order: mean |g|, L2 ||g||, max |g|.
    ratio = ||g|| of the first conv/linear (weight.ndim >= 2) / that of the last.
    Vanishing: ratio < vanish_ratio. Exploding: a non-finite gradient, any ||g|| >
    explode_norm, or ratio > 1 / vanish_ratio. Train mode by default (as a training step
    sees it); BatchNorm running statistics and the RNG are restored afterwards.
    """
    from cnnlab.inspect.capture import needs_gradients

    needs_gradients("gradient_flow")
    model = _unwrap(model)
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], Tensor):
        batches = [batches]
    modules = _weighted_modules(model)
    weights = [m.weight for m in modules.values()]
    flags = [w.requires_grad for w in weights]
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: order.append(name))
        for name, m in modules.items()
    ]
    sums = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    device, n = _device(model), 0
    try:
        for w in weights:
            w.requires_grad_(True)  # frozen layers are measured too
        with _preserved(model, train), torch.enable_grad():
            for x, y in _batches(batches, 256, labels=True):
                loss = _loss(loss_fn, _forward(model, x.to(device)), y.to(device))
                grads = torch.autograd.grad(loss, weights, allow_unused=True)
                for total, g in zip(sums, grads, strict=True):
                    if g is not None:
                        total += g.double() * len(x)  # mean loss over all samples
                n += len(x)
    finally:
        for hook in hooks:
            hook.remove()
        for w, flag in zip(weights, flags, strict=True):
            w.requires_grad_(flag)
    if n == 0:
        raise CnnlabError("batches: no (x, y) batch given")
    names = list(modules)
    seen = list(dict.fromkeys(order))  # forward order, first call of each module
    layers = []
    for name in seen:
        g = sums[names.index(name)] / n
        layers.append(
            GradLayer(
                name,
                type(modules[name]).__name__,
                float(g.abs().mean()),
                float(g.norm()),
                float(g.abs().max()),
                g.numel(),
            )
        )
    return _flow(model, modules, layers, n, vanish_ratio, explode_norm)


def _loss(loss_fn: Callable, logits: Tensor, y: Tensor) -> Tensor:
    """loss_fn(logits, y); labels that do not fit the logits are the user's input."""
    try:
        return loss_fn(logits, y)
    except (RuntimeError, IndexError, ValueError) as e:  # e.g. a label >= the class count
        raise CnnlabError(
            f"data: the loss cannot be computed from logits {tuple(logits.shape)} and labels "
            f"{tuple(y.shape)} ({e}); labels must be class indices 0..{logits.shape[-1] - 1}, "
            "one per image"
        ) from e


def _flow(model, modules, layers, n, vanish_ratio, explode_norm) -> GradientFlow:
    main = [l for l in layers if modules[l.name].weight.ndim >= 2] or layers
    first, last = (main[0].l2, main[-1].l2) if main else (math.nan, math.nan)
    if last > 0:
        ratio = first / last
    else:
        ratio = math.inf if first > 0 else math.nan
    norms = [l.l2 for l in layers]
    exploding = (
        not all(math.isfinite(v) for v in norms)
        or any(v > explode_norm for v in norms)
        or (math.isfinite(ratio) and ratio > 1 / vanish_ratio)
    )
    vanishing = ratio < vanish_ratio  # nan compares False
    return GradientFlow(tuple(layers), ratio, vanishing, exploding, n, vanish_ratio, explode_norm)


# --- during training -------------------------------------------------------------------------


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
    dead = dead_units(model, x, batch_size=max(len(x), 1))  # empty x: "no images", below
    flow = gradient_flow(model, [(x, y)], loss_fn)
    return {
        "dead_share": {l.name: round(l.dead_share, 4) for l in dead.layers},
        "sparsity": {l.name: round(l.sparsity, 4) for l in dead.layers},
        "grad_norm": {l.name: _finite(l.l2) for l in flow.layers},
        "grad_ratio": _finite(flow.ratio),
        "vanishing": flow.vanishing,
        "exploding": flow.exploding,
    }


# --- what to try ------------------------------------------------------------------------------


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
    out = []
    for l in dead.flagged if dead else ():
        out.append(
            Finding(
                "dead-units",
                f"{l.name}: {l.dead}/{l.channels} channels never fire, sparsity {l.sparsity:.0%}",
                "lower the learning rate (or warm it up), use LeakyReLU/ELU, use He (Kaiming) "
                "init, add BatchNorm before the activation",
            )
        )
    if flow and flow.vanishing:
        out.append(
            Finding(
                "vanishing-gradients",
                f"first layer's gradient is {flow.ratio:.2g}x the last's",
                "replace sigmoid/tanh with ReLU, add BatchNorm, add residual connections, "
                "use He init",
            )
        )
    if flow and flow.exploding:
        out.append(
            Finding(
                "exploding-gradients",
                f"gradient norms too large or not finite (first/last = {flow.ratio:.3g})",
                "lower the learning rate, clip gradients, add BatchNorm, check the input "
                "normalisation",
            )
        )
    for l in acts.layers if acts else ():
        if l.saturated is not None and l.saturated > 0.5:
            out.append(
                Finding(
                    "saturated",
                    f"{l.name} ({l.kind}): {l.saturated:.0%} of outputs saturated",
                    "use ReLU in hidden layers, add BatchNorm before the activation",
                )
            )
    return out
