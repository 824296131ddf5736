"""Gradient flow (notes §4.2): how much of the loss's gradient reaches each layer's weights,
and whether it vanishes on the way down, explodes, or does not flow at all."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from cnnlab.diagnose.jsonable import finite, jsonable
from cnnlab.diagnose.makeup import Makeup, Seen
from cnnlab.diagnose.params import (
    frozen_modules,
    hooked_weight,
    joined,
    own_params,
    untied,
    weighted,
    weighted_modules,
    zeros,
)
from cnnlab.diagnose.units import hidden_modules
from cnnlab.errors import DataError, ExplainError
from cnnlab.inspect import (
    CallOrder,
    Hooks,
    OutputSelector,
    check_images,
    check_values,
    device_of,
    forward,
    gradients,
    needs_gradients,
    preserved,
    select_logits,
    unwrap,
)
from cnnlab.inspect import batches as iter_batches  # gradient_flow's argument is `batches`
from cnnlab.inspect.progress import Progress, batch_count


@dataclass(frozen=True)
class GradLayer:
    """Statistics of d loss / d weight for one module that owns a `weight` parameter; of a
    module that owns other parameters only (a ConvNeXt block's layer scale, a bias-only
    shift), of d loss / d (those parameters, flattened and joined in registration order)."""

    name: str
    kind: str  # module class name
    mean_abs: float
    l2: float
    max: float
    numel: int
    reached: bool = True  # False: no autograd path from the loss (torch.no_grad, .detach())
    # its weight does not train (requires_grad False) while other layers' do: measured, shown
    # as frozen, and left out of every judgement (ratio, vanishing, exploding, cut off)
    frozen: bool = False
    # the other modules whose weight is this same Parameter (tied, as an autoencoder's decoder
    # to its encoder): one weight, one gradient (the sum over its uses), listed once, under
    # the name named_parameters() gives it (its first owner)
    tied: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The name a table shows: "(the model)" for parameters the root module holds itself
        (a learned input scale, a class token), whose name is ""."""
        return self.name or "(the model)"

    @property
    def note(self) -> str:
        """ "frozen", "tied: also dec", both, or "": what a table shows beside the numbers."""
        notes = ["frozen"] if self.frozen else []
        notes += [f"tied: also {', '.join(self.tied)}"] if self.tied else []
        return "; ".join(notes)


@dataclass(frozen=True)
class GradientFlow:
    layers: tuple[GradLayer, ...]  # forward order
    ratio: float  # L2 of the first conv/linear weight gradient / that of the last
    vanishing: bool
    exploding: bool
    samples: int
    vanish_ratio: float
    explode_norm: float
    train: bool = True  # the mode the forward ran in (`train_mode_logits`)
    # the activations and normalisations the first batch's forward computed, which the advice
    # for a vanishing gradient names (`advice.findings`); None: not seen
    makeup: Makeup | None = None

    @property
    def no_gradient(self) -> bool:
        """Every weight gradient is exactly zero: nothing of the loss reaches any layer (all
        units dead, a zero-initialised network, an output cut from the graph). The ratio
        is then nan and neither vanishing nor exploding can be said. Frozen layers do not
        count: they do not train."""
        trained = [l for l in self.layers if not l.frozen]
        return bool(trained) and all(l.l2 == 0 for l in trained)

    @property
    def cut_off(self) -> tuple[str, ...]:
        """Layers no gradient path from the loss reaches, while others are reached (the
        forward runs them under torch.no_grad() or .detach()es their output)."""
        if self.no_gradient:
            return ()
        return tuple(l.name for l in self.layers if not l.reached and not l.frozen)

    @property
    def unused(self) -> tuple[str, ...]:
        """The layers `cut_off` whose output the forward computed with autograd
        (`Makeup.graphed`): the loss does not reach them though their output has a graph, so
        the logits do not use it (a head the classifier skips: Hugging Face's
        SiglipForImageClassification mean-pools the tokens and leaves its vision model's
        attention-pooling `head` unread) or the forward .detach()es it. The others ran under
        torch.no_grad() (or in a reentrant checkpoint)."""
        graphed = self.makeup.graphed if self.makeup is not None else ()
        return tuple(name for name in self.cut_off if name in graphed)

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "ratio": finite(self.ratio),
            "vanishing": self.vanishing,
            "exploding": self.exploding,
            "no_gradient": self.no_gradient,
            "cut_off": list(self.cut_off),
            "unused": list(self.unused),
            "vanish_ratio": self.vanish_ratio,
            "explode_norm": self.explode_norm,
            "train": self.train,
            "layers": [{k: jsonable(v) for k, v in asdict(l).items()} for l in self.layers],
        }

    def headline(self) -> str:
        """ "first/last = 0.012 (VANISHING)", or that no gradient flows at all."""
        if self.no_gradient:
            return "no gradient flows: every weight gradient is exactly 0"
        flags = [
            f for f, on in (("VANISHING", self.vanishing), ("EXPLODING", self.exploding)) if on
        ]
        return f"first/last = {self.ratio:.3g}" + (f"  ({', '.join(flags)})" if flags else "")

    def __str__(self) -> str:
        lines = [f"gradient flow on {self.samples} inputs: {self.headline()}"]
        for l in self.layers:
            note = f"  ({l.note})" if l.note else ""
            lines.append(f"  {l.label:<24} {l.kind:<12} |g| {l.mean_abs:.3e}  L2 {l.l2:.3e}{note}")
        return "\n".join(lines)


def _grab(got: dict[str, Tensor], name: str) -> Callable:
    """A forward pre-hook, after torch's: a hook on the weight this call uses that adds its
    gradient to got[name] whenever a backward computes it. Inside a reentrant activation
    checkpoint that is the recompute's weight: the forward's there has no graph."""

    def add(grad: Tensor) -> None:
        got[name] = got[name] + grad if name in got else grad

    def hook(module: nn.Module, args: Any) -> None:
        if module.weight.requires_grad:
            module.weight.register_hook(add)

    return hook


def _weights(modules: dict[str, nn.Module]) -> list:
    """Each module's weight, requiring grad: the parameter, or the tensor a parametrization
    computes from parameters made to require grad (frozen layers are measured too; restored
    by `preserved`); a module without a weight, the list of its own parameters. Read within
    parametrize.cached(), the forward uses that same tensor."""
    weights: list = []
    for m in modules.values():
        hooked = False
        if not weighted(m):
            trained = own_params(m)
            for p in trained:
                p.requires_grad_(True)
            weights.append(trained)
            continue
        if parametrize.is_parametrized(m, "weight"):
            trained = list(m.parametrizations["weight"].parameters())
        elif hooked_weight(m):  # its weight is read at each call (`_grab`): None here
            trained, hooked = list(m.parameters(recurse=False)), True
        else:
            trained = [m.weight]
        for p in trained:
            p.requires_grad_(True)
        weights.append(None if hooked else m.weight)
    return weights


def _batch_grads(
    loss: Tensor, weights: list, modules: dict[str, nn.Module], got: dict, model: nn.Module
) -> list:
    """d loss / d weight per module (None: unreached); a hooked module's (`hooked_weight`) summed
    over the weights its calls used, as its hooks collect them (`_grab`): autograd is asked
    for the module's own parameters, to which the path runs through those weights. A module
    without a weight (a list in `weights`): its parameters' gradients flattened and joined,
    0 for one unreached while another is reached. Through reentrant activation checkpoints
    too (`inspect.gradients`; `.grad` is left as it was)."""
    flat, owners = [], []
    for i, (m, w) in enumerate(zip(modules.values(), weights, strict=True)):
        if isinstance(w, list):  # a module without a weight: its own parameters
            own = w
        else:  # the weight; a hooked module's parameters (None)
            own = [w] if w is not None else list(m.parameters(recurse=False))
        flat += own
        owners += [i if w is not None else None] * len(own)
    parts: dict[int, list] = {}
    for i, g in zip(owners, gradients(loss, flat, model.parameters()), strict=True):
        if i is not None:
            parts.setdefault(i, []).append(g)
    grads: list[Tensor | None] = [None] * len(weights)
    for i, gs in parts.items():
        grads[i] = joined(gs, weights[i]) if isinstance(weights[i], list) else gs[0]
    for i, name in enumerate(modules):
        if weights[i] is None:
            grads[i] = got.get(name)
    return grads


def gradient_flow(
    model: nn.Module,
    batches,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    *,
    vanish_ratio: float = 1e-3,
    explode_norm: float = 1e3,
    train: bool = True,
    output: OutputSelector = None,
    progress: Progress | None = None,
) -> GradientFlow:
    """Per-layer gradient of the loss w.r.t. each module's weight (notes §4.2).

    The gradient is that of the mean loss over all samples of `batches` (an iterable of
    (x, y), or one (x, y) tuple), taken with `torch.autograd.grad` (through reentrant
    activation checkpoints too, see `inspect.gradients`): `.grad` is untouched.
    Per module that owns a `weight`, in forward order: mean |g|, L2 ||g||, max |g|; per
    module that owns other parameters only (a layer scale, a bias), the same over all of them.
    ratio = ||g|| of the first conv/linear (weight.ndim >= 2) / that of the last.
    Vanishing: ratio < vanish_ratio. Exploding: a non-finite gradient, any ||g|| >
    explode_norm, or ratio > 1 / vanish_ratio. All gradients zero: `no_gradient`.
    Train mode by default (as a training step sees it); BatchNorm running statistics and
    the RNG are restored afterwards.
    output: the logits in a model's output that is not a (B, K) tensor (a key, an index or a
    function, as for `explain.saliency`): a dict of Hugging Face's, Inception's (logits, aux)
    in train mode.
    progress: progress(batches done, batches, "gradient flow") after each batch.
    """
    needs_gradients("gradient_flow")
    model = check_values(unwrap(model))  # a meta model has no values to run
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], Tensor):
        batches = [batches]
    watched = weighted_modules(model)
    modules, tied = untied(watched)
    frozen = frozen_modules(modules)  # before the measurement makes every weight require grad
    seen = Seen(model)
    sums, calls, n, reached = _gradient_sums(
        model, modules, batches, loss_fn, train, output, progress, watched, seen
    )
    owner = {other: first for first, others in tied.items() for other in others}
    order = dict.fromkeys(owner.get(name, name) for name in calls)  # a tied weight: its first use
    layers = []
    for name in order:  # forward order, first call of each module
        g = sums[name] / n
        layers.append(
            GradLayer(
                name,
                type(modules[name]).__name__,
                float(g.abs().mean()),
                float(g.norm()),
                float(g.abs().max()),
                g.numel(),
                name in reached,
                name in frozen,
                tied.get(name, ()),
            )
        )
    ndims = {name: g.ndim for name, g in sums.items()}  # (not modules' .weight: see above)
    makeup = seen.makeup(hidden_modules(model))
    return replace(_flow(ndims, layers, n, vanish_ratio, explode_norm), train=train, makeup=makeup)


def train_mode_logits(model: nn.Module, x: Tensor, output: OutputSelector = None) -> bool:
    """Whether `model`'s train-mode forward gives the logits, so that `gradient_flow` can
    run as a training step sees it. An Inception-style model returns (logits, aux logits) in
    train mode and the logits alone in eval mode (a run imported with such a model: cnnlab
    trains none), and where which item is the logits is a convention (DeiT's distilled
    head returns (class, distillation) logits in train mode, their mean in eval): such a
    model is measured in eval mode. One forward of x[:2] (of a 3-D x, all of it), without
    autograd; the model is restored (`preserved`). A 3-D x may be one (C, H, W) image, which
    a model of unbatched convs runs into (K,) logits: its answer is then that of its batch
    x[None], the batch a training step gives (a second forward, where the first said no)."""
    model = check_values(unwrap(model))  # a meta model has no values to run
    x = check_images(x, flat=True)
    # a 3-D x may be one (C, H, W) image, whose first axis is not a batch to cut: `forward`
    # then tells it to add its batch dim
    x = (x if x.dim() == 3 else x[:2]).to(device_of(model))

    def gives_logits(images: Tensor) -> bool:
        with preserved(model, train=True), torch.no_grad():
            out = forward(model, images, logits=False)  # images that do not fit: told
        try:
            select_logits(out, output)
        except ExplainError:
            return False
        return True

    if gives_logits(x):
        return True
    if x.dim() != 3:
        return False
    # x[None] is a guess, x itself ran: a (B, C, L) batch of a 1-D model, which x[None] does
    # not fit (whatever it raises: torch's errors, a forward unpacking x.shape), keeps x's no
    try:
        return gives_logits(x[None])
    except Exception:
        return False


def _gradient_sums(
    model: nn.Module,
    modules: dict[str, nn.Module],
    data,
    loss_fn: Callable,
    train: bool,
    output: OutputSelector,
    progress: Progress | None = None,
    watched: dict[str, nn.Module] | None = None,
    seen: Seen | None = None,
) -> tuple[dict[str, Tensor], list[str], int, set[str]]:
    """({module: Σ over samples of d mean-loss / d weight}, the `watched` modules (default:
    `modules`; with the other owners of tied weights) in the order the forward first calls
    them, the number of samples, the modules autograd reached in some batch (the others'
    gradient is None: no path from the loss, not a small number)). `seen` watches the first
    batch's forward (its activations and normalisations)."""
    watched = modules if watched is None else watched
    device, n, reached = device_of(model), 0, set()
    count = batch_count(data, 256)
    if progress is not None:
        progress(0, count, "gradient flow")
    got: dict[str, Tensor] = {}  # the gradients of the weights hooked modules' calls used
    grabs = [(m, _grab(got, name)) for name, m in modules.items() if hooked_weight(m)]
    with (
        preserved(model, train=train, requires_grad=None),
        CallOrder(model, watched) as order,
        Hooks().before(grabs),
        torch.enable_grad(),
    ):
        # read inside `preserved`: a spectral_norm layer in train mode iterates at every read
        # of its weight, moving its _u/_v buffers (restored on exit only in train mode; eval
        # mode, the default, reads without iterating)
        with parametrize.cached(), torch.no_grad():
            sums = [zeros(m) for m in modules.values()]
        for done, (x, y) in enumerate(iter_batches(data, 256, labels=True), 1):
            got.clear()
            # one computed weight per batch, the one we read; the backward inside: a reentrant
            # checkpoint's recompute then uses that weight too, not a new one autograd.grad
            # would not reach
            with parametrize.cached():
                weights = _weights(modules)
                with seen if seen is not None and done == 1 else nullcontext():
                    logits = forward(model, check_images(x, flat=True).to(device), output)
                loss = _loss(loss_fn, logits, y.to(device))
                grads = _batch_grads(loss, weights, modules, got, model)
            for name, total, g in zip(modules, sums, grads, strict=True):
                if g is not None:
                    total += g.double() * len(x)  # mean loss over all samples
                    reached.add(name)
            n += len(x)
            if progress is not None:
                progress(done, count, "gradient flow")
    if n == 0:
        raise DataError("batches: no (x, y) batch given")
    return (
        dict(zip(modules, sums, strict=True)),
        _scripted_too(model, order.first_calls(), watched),
        n,
        reached,
    )


def _scripted_too(model: nn.Module, order: list[str], weighted: dict) -> list[str]:
    """`order` with the `weighted` modules inside TorchScript blocks, which take no hooks, so
    no call of theirs is seen: each after the module registered before it (their gradients
    are autograd's like any other's). A model scripted whole has every module inside."""
    named = dict(model.named_modules())
    scripted = [n for n, m in named.items() if isinstance(m, torch.jit.ScriptModule)]
    inside = tuple(f"{s}." if s else "" for s in scripted)  # "": the model itself
    names, result = list(named), list(order)
    for i, name in enumerate(names):
        if name in result or not name.startswith(inside) or name not in weighted:
            continue
        before = next((n for n in reversed(names[:i]) if n in result), None)
        result.insert(0 if before is None else result.index(before) + 1, name)
    return result


def _loss(loss_fn: Callable, logits: Tensor, y: Tensor) -> Tensor:
    """loss_fn(logits, y); labels that do not fit the logits are the user's input. loss_fn is
    a callable of (logits, labels): a loss class (nn.CrossEntropyLoss, not an instance) is
    refused, as calling it constructs a loss with the logits as its arguments."""
    if isinstance(loss_fn, type):
        name = loss_fn.__name__
        raise ExplainError(
            f"loss_fn={name} is a class; give an instance, loss_fn={name}(), or a function "
            "such as F.cross_entropy"
        )
    try:
        return loss_fn(logits, y)
    except (RuntimeError, IndexError, ValueError) as e:  # e.g. a label >= the class count
        cross_entropy = loss_fn is F.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss)
        need = (
            f"labels must be class indices 0..{logits.shape[-1] - 1}, one per image"
            if cross_entropy
            else "loss_fn is given the model's (B, K) logits and each batch's labels as they are"
        )
        raise DataError(
            f"data: the loss cannot be computed from logits {tuple(logits.shape)} and labels "
            f"{tuple(y.shape)} ({e}); {need}"
        ) from e


def _flow(ndims: dict[str, int], layers, n, vanish_ratio, explode_norm) -> GradientFlow:
    """The ratio over the trained layers a gradient reaches (a backbone under torch.no_grad()
    is cut off, not vanishing; every layer cut off is `no_gradient`; a frozen layer is not
    judged at all); ndims: each layer's weight's."""
    trained = [l for l in layers if not l.frozen]
    reached = [l for l in trained if l.reached] or trained
    main = [l for l in reached if ndims[l.name] >= 2] or reached
    first, last = (main[0].l2, main[-1].l2) if main else (math.nan, math.nan)
    if last > 0:
        ratio = first / last
    else:
        ratio = math.inf if first > 0 else math.nan
    norms = [l.l2 for l in trained]
    exploding = (
        not all(math.isfinite(v) for v in norms)
        or any(v > explode_norm for v in norms)
        or (math.isfinite(ratio) and ratio > 1 / vanish_ratio)
    )
    vanishing = ratio < vanish_ratio  # nan compares False
    return GradientFlow(tuple(layers), ratio, vanishing, exploding, n, vanish_ratio, explode_norm)
