"""Recording the statistics of every activation site from forwards of the model
(`Recording`): what `dead_units` and `activation_stats` read, one `_Site` per activation.

Activations are found where they are computed (`cnnlab.diagnose.makeup.Seen`, an
`ActivationSites`), so other readers of the same forward (a `Capture`) can share the pass.
"""

from __future__ import annotations

import math
from contextlib import ExitStack

import torch
from torch import Tensor, nn

from cnnlab.design.activations import Activation
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


class Recording:
    """Activation statistics of every site (`_Site`), recorded from the forwards the caller
    runs inside `with Recording(model) as rec:`: before each forward of a batch x,
    `rec.before(x)`; after it, `rec.add(len(x))` (a forward outside these two is not
    recorded). The model is in eval mode (train=True:
    train mode), its parameters frozen, inside the block (`preserved`), as `dead_units` and
    `activation_stats` run it; so other readers of the same forward (a `Capture`) share the
    pass. `dead_units(..., activations=rec)` reads a recording so made.
    trains (frozen_check): on the first batch, one forward of two of its images with autograd
    on marks each site that a weight that trains reaches (`_probe_trains`), when some
    parameter requires grad. normed: the sites a normalisation is computed before
    (`Makeup.normed`), after the block."""

    def __init__(
        self,
        model: nn.Module,
        *,
        train: bool = False,
        moments: bool = False,
        output: OutputSelector = None,
        frozen_check: bool = False,
    ) -> None:
        self.model = check_values(unwrap(model))  # a meta model has no values to run
        self.train, self.moments, self.output = train, moments, output
        self.sites: dict[str, _Site] = {}
        self.samples = 0
        self.trains: dict[str, bool] | None = {} if frozen_check else None
        self.normed: list[str] = []
        self.device = device_of(self.model)
        self._probing: list[bool] = []  # non-empty while the probe's forward runs
        self._on = False  # between before() and add(): the forward is recorded
        self._stack = ExitStack()

    def _on_call(self, name: str, activation: Activation, y: Tensor) -> None:
        if not self._on:  # a forward between add() and the next before() is not recorded
            return
        if self._probing:  # computed with autograd off, it is not known (see _probe_trains)
            may = y.requires_grad or not torch.is_grad_enabled()
            self.trains[name] = self.trains.get(name, False) or may
            return
        site = self.sites.get(name)
        if site is None:
            site = self.sites[name] = _Site(activation, y.shape[1], self.moments)
        if y.shape[1] != site.channels:
            raise DataError(f"activation {name}: channel count changed between batches")
        site.add(y)

    def __enter__(self) -> Recording:
        model = self.model
        self._flags = [(p, p.requires_grad) for p in model.parameters()]  # before preserved
        self._probe = self.trains is not None and any(flag for _, flag in self._flags)
        with ExitStack() as stack:
            stack.enter_context(preserved(model, train=self.train))
            stack.enter_context(torch.no_grad())
            self._seen = stack.enter_context(Seen(model, self._on_call))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)
        if exc[0] is None:
            self.normed.extend(self._seen.makeup(()).normed)

    def before(self, x: Tensor) -> None:
        """Call before the forward of batch x (checked images on the model's device)."""
        self._on = True
        if self._probe and self.samples == 0:
            self._probe = False
            args = (self.output, self.train, self._probing, self.trains)
            _probe_trains(self.model, x[:2], self._flags, *args)

    def add(self, n: int) -> None:
        """Call after the forward of a batch of n images."""
        self._on = False
        self.samples += n


def _record(
    model: nn.Module,
    data,
    batch_size: int,
    train: bool,
    moments: bool = False,
    progress: Progress | None = None,
    what: str = "",
    output: OutputSelector = None,
    frozen_check: bool = False,
) -> Recording:
    """Run data through the model (no grad), accumulating statistics per activation site
    (`Recording`); progress(batches done, batches, what) before the first batch and after
    each."""
    _check_batch_size(batch_size)
    rec = Recording(model, train=train, moments=moments, output=output, frozen_check=frozen_check)
    total = batch_count(data, batch_size)
    if progress is not None:
        progress(0, total, what)
    with rec:
        for done, (x, _) in enumerate(batches(data, batch_size), 1):
            x = check_images(x, flat=True).to(rec.device)
            rec.before(x)
            forward(rec.model, x, output)
            rec.add(len(x))
            if progress is not None:
                progress(done, total, what)
    _check_samples(rec.samples)
    return rec


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExplainError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def _check_samples(n: int) -> None:
    if n == 0:
        raise DataError("data: no images (an empty tensor or iterable)")


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
