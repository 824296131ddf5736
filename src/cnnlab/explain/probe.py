"""Linear probes (notes §5.4): freeze the model, train a linear classifier on one layer's
features; if it does well, that layer already holds the class identity.

All chosen layers are read from ONE forward pass per batch (forward hooks), each map pooled to
a bounded size, standardised, then one multinomial logistic regression per layer is trained
in torch with full-batch L-BFGS on the same budget. "input" (the raw pixels) is the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.inspect import (
    Capture,
    OutputSelector,
    as_float,
    batch_axes,
    batches,
    call_axes,
    call_channel_dims,
    check_images,
    first_batch,
    forward,
    images_first,
    layer_calls,
    needs_gradients,
    per_image,
    preserved,
    scripted_whole,
)
from cnnlab.inspect.names import split_call
from cnnlab.inspect.preserve import inner_name, unwrap
from cnnlab.inspect.progress import Progress, batch_count

INPUT = "input"
# Containers are opened up when choosing default layers: their children are the blocks.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# So is a block holding this share of the parameters: it wraps the network (`self.net = ...`,
# a transformers model inside a logits wrapper) rather than being one step of it. The last
# stage of a CNN whose widths double per stage holds 75-80 %.
WRAPPER_SHARE = 0.9


@dataclass(frozen=True)
class ProbeLayers:
    """The layers `default_probe_layers` chose, and the calls of its blocks it left out:
    {label: their output's shape in a forward of two images}, an output with no axis of one
    row per image (a window attention's (B·windows, ...), a block the forward calls once
    per image), which the probe cannot read; a caller says so (`cnnlab probe`'s note)."""

    layers: list[str]
    left_out: dict[str, tuple]


def default_probe_layers(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """The model's blocks: its direct children, with containers (Sequential, ModuleList,
    ModuleDict), wrappers (a child holding at least WRAPPER_SHARE of the parameters) and
    children whose output is no tensor (a transformers encoder's record) replaced by their
    children where the forward calls any of them, recursively; each of their calls, in
    forward order, with one row per image on some axis (`inspect.call_axes`: a
    sequence-first LSTM's (T, B, F) has them on axis 1; not a window attention's rows, nor
    a block the forward calls once per image, whose every call the probe read as the whole
    batch and refused: `probe_layer_choice` names those), labelled as the summary labels
    calls: `relu`, then `relu #2` for a module called again (its last call was probed under
    its name)."""
    return probe_layer_choice(model, x, output).layers


def probe_layer_choice(model: nn.Module, x: Tensor, output: OutputSelector = None) -> ProbeLayers:
    """`default_probe_layers`, with the calls of the chosen blocks it left out (`ProbeLayers`)."""
    chosen: set[str] = set()
    total = sum(p.numel() for p in model.parameters())
    every = call_axes(model, x, output)  # the calls with a tensor output, from 2 images
    tensors = {name for _, name, _, axis in every if axis is not None}  # a row per image
    called = {name for _, name, _, _ in every}

    def opened(name: str, child: nn.Module) -> bool:
        if isinstance(child, _CONTAINERS):
            return True
        # a module none of whose children the forward calls is read whole: an
        # nn.MultiheadAttention holding 90 % of a CRNN's weights uses its out_proj's weight,
        # never calls it, and was opened to nothing
        if not any(n.startswith(f"{name}.") for n in called):
            return False
        share = sum(p.numel() for p in child.parameters()) / total if total else 0.0
        return share >= WRAPPER_SHARE or name not in tensors

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if opened(full, child):
                visit(child, full + ".")
            else:
                chosen.add(full)

    visit(model, "")
    mine = [(label, shape, axis) for label, name, shape, axis in every if name in chosen]
    return ProbeLayers(
        [label for label, _, axis in mine if axis is not None],
        {label: shape for label, shape, axis in mine if axis is None},
    )


def pool_features(a: Tensor, cap: int) -> Tensor:
    """(B, C, H, W) → (B, C·s·s) by adaptive average pooling to s×s, s = the largest side with
    C·s² ≤ cap (at least 1, at most min(H, W)); (B, C, N), a transformer's N tokens of C
    channels or an LSTM's N steps of C hidden units (moved to dim 1), or a 1-d map, →
    (B, C·s) by adaptive average pooling to s positions, C·s ≤ cap (at least 1, at most N):
    a ViT-B's 197×768 tokens were 151,296 features an image, 150× a map's, where the cap
    keeps every layer's probe alike; other shapes are flattened to (B, F)."""
    if a.dim() == 4:
        c, h, w = a.shape[1:]
        s = max(1, min(h, w, math.isqrt(max(cap // c, 1))))
        if (s, s) != (h, w):
            a = F.adaptive_avg_pool2d(a, s)
    elif a.dim() == 3:
        c, n = a.shape[1:]
        s = max(1, min(n, cap // c))
        if s != n:
            a = F.adaptive_avg_pool1d(a, s)
    return a.flatten(1).float().clone()  # never a view of a map an in-place op may change


class FeatureReader:
    """The pooled features of `layers` ("input": the images) of each batch a forward of
    `model` runs inside `with FeatureReader(...) as reader:`, through one `Capture` that pools
    each map inside its hook (no full map kept); after each forward of a batch x,
    `reader.read(x, y)`. `features()` gives ({layer: (N, D)}, labels (N,)), as
    `extract_features` does; other readers of the same forward (a `diagnose.Recording`)
    share the pass. first: a batch of the images (float, as the model takes them), on which
    each layer's channel dim is read (a ConvNeXt's (B, H, W, C), an LSTM's hidden units:
    the last, moved first) and its images' axis (`inspect.batch_axes`: a sequence-first
    LSTM's (T, B, H) read as (B, H, T), as its batch_first twin's (B, T, H) is)."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        first: Tensor | None,
        *,
        cap: int = 1024,
        output: OutputSelector = None,
    ) -> None:
        self.layers, self.cap = list(layers), cap
        self.feats: dict[str, list[Tensor]] = {name: [] for name in self.layers}
        self.labels: list[Tensor] = []
        hooked = [name for name in self.layers if name != INPUT]
        with preserved(model):
            dims = {} if first is None else call_channel_dims(model, first, output)
            axes = {} if first is None or not hooked else batch_axes(model, first, output)
        every = dict(model.named_modules())  # each layer a call's label (`relu #2`): its own
        pools = {
            n: partial(
                self.pool, dim=dims.get(call_label(*split_call(n, every)), 1), batch=axes.get(n, 0)
            )
            for n in hooked
        }
        # Pooled inside the hooks: no clone of each map, no full maps kept (2x faster on 23
        # layers).
        self.capture = Capture(model, hooked, transform=pools, calls=True)

    def pool(self, a: Tensor, dim: int = 1, batch: int = 0) -> Tensor:
        return pool_features(images_first(a, batch, dim), self.cap)

    def __enter__(self) -> FeatureReader:
        self.capture.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.capture.__exit__(*exc)

    def read(self, x: Tensor, y: Tensor) -> None:
        """Keep the features of the forward of batch x just run, and its labels y."""
        for name in self.layers:
            self.feats[name].append(
                self.pool(x)
                if name == INPUT
                else per_image(self.capture.tensor(name), name, len(x), _ONE_ROW)
            )
        self.labels.append(y)

    def features(self) -> tuple[dict[str, Tensor], Tensor]:
        if not self.labels:
            raise ExplainError("linear probes got an empty data set")
        return {name: torch.cat(f) for name, f in self.feats.items()}, torch.cat(self.labels)


def extract_features(
    model: nn.Module,
    data: Any,
    layers: Sequence[str],
    *,
    cap: int = 1024,
    batch_size: int = 256,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    output: OutputSelector = None,
    progress: Progress | None = None,
    what: str = "features",
) -> tuple[dict[str, Tensor], Tensor]:
    """({layer: (N, D) pooled features}, labels (N,)) from one forward pass per batch
    (`FeatureReader`). The layer "input" is the images themselves, pooled the same way.
    progress: progress(batches done, batches, what) after each batch."""
    total = batch_count(data, batch_size)
    if progress is not None:
        progress(0, total, what)
    data, first = first_batch(data)
    first = None if first is None else as_float(first, preprocess)
    reader = FeatureReader(model, layers, first, cap=cap, output=output)
    with preserved(model), reader, torch.no_grad():
        for done, (x, y) in enumerate(batches(data, batch_size), 1):
            if y is None:
                raise ExplainError("linear probes need labels: pass (images, labels) data")
            y = class_indices(y, len(x))
            x = check_images(as_float(x, preprocess), flat=True)
            forward(model, x, output, logits=False)
            reader.read(x, y)
            if progress is not None:
                progress(done, total, what)
    return reader.features()


def class_indices(y: Tensor, n: int) -> Tensor:
    """`y`, the labels of n images, as (n,) int64 class indices ≥ 0 (whole floats, 3.0, as
    scikit-learn takes them); ExplainError naming the fix for anything else: one-hot (n, K)
    rows, an (n, 1) column, fractional values (no class; a cast would pick another),
    negative ones, another length."""
    if y.dim() == 2 and y.shape[0] == n:
        fix = "y.reshape(-1)" if y.shape[1] == 1 else "y.argmax(1) (one-hot rows)"
        raise ExplainError(
            f"linear probes need labels as class indices (N,), got shape {tuple(y.shape)}; "
            f"give {fix}"
        )
    if y.dim() != 1 or len(y) != n:
        raise ExplainError(
            f"linear probes need one class index per image; got {n} images and labels "
            f"{tuple(y.shape)}"
        )
    if y.is_floating_point() and not torch.equal(y, y.round()):
        bad = y[y != y.round()][0].item()
        raise ExplainError(
            f"linear probes need labels as class indices, got the fractional label {bad:g} "
            f"({y.dtype}); give the integer class of each image"
        )
    if y.dtype == torch.bool:
        raise ExplainError(
            "linear probes need labels as class indices, got booleans; give y.long() "
            "(False: class 0, True: class 1)"
        )
    if y.is_complex():
        raise ExplainError(
            f"linear probes need labels as class indices, got {y.dtype}; give the integer "
            "class of each image"
        )
    if len(y) and y.min() < 0:
        raise ExplainError(
            f"linear probes need one class index >= 0 per image, got labels of {y.dtype} "
            f"(min {y.min().item()})"
        )
    return y.long()


# a layer whose output has rows per window: the probe's fit failed on a batch-size mismatch
_ONE_ROW = "a linear probe needs one row per image: choose another layer with --layers"


def fit_logistic(
    x: Tensor, y: Tensor, classes: int, *, epochs: int = 100, l2: float = 1e-4
) -> nn.Linear:
    """Multinomial logistic regression, full-batch L-BFGS for `epochs` iterations (each one a
    pass over all of x), cross-entropy + l2·‖W‖². x: (N, D) standardised, y: (N,)."""
    # Built on meta and zeroed: nn.Linear's random init would advance the user's global RNG.
    head = nn.Linear(x.shape[1], classes, device="meta").to_empty(device=x.device)
    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)  # convex: start anywhere
    opt = torch.optim.LBFGS(
        head.parameters(), lr=1, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(x), y) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return head


def linear_probe(
    model: nn.Module,
    train: Any,
    test: Any,
    layers: Sequence[str] | None = None,
    *,
    epochs: int = 100,
    l2: float = 1e-4,
    cap: int = 1024,
    batch_size: int = 256,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    output: OutputSelector = None,
    progress: Progress | None = None,
    test_features: tuple[dict[str, Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """Test accuracy of a linear classifier on each layer's features: {layer: accuracy}, with
    "input" (raw pixels) first, then the layers in forward (depth) order.

    train, test: (images, labels) tensor pairs, ImageSet-like objects (.images, .labels) or
    iterables of (x, y) batches; float images normalised as for training, or any images with
    `preprocess` (e.g. `run.preprocess` for a run's uint8 data sets; uint8 without it: refused).
    layers: dotted names (one name: that layer), a module called more than once named as
    the summary names its calls (`relu` its first, `relu #2` its second); None = the
    model's blocks, each call of them (see `default_probe_layers`).
    Features: each map adaptive-average-pooled to s×s with C·s² ≤ cap, each layer of tokens
    (B, N, C) to s tokens with C·s ≤ cap (see `pool_features`),
    standardised with the training set's mean and std. Each probe: `fit_logistic` for `epochs`
    full-batch L-BFGS iterations, the same budget for every layer. Features come from the
    model in eval mode, its own mode restored after.
    progress: progress(done, total, what) after each batch of features ("features of the
    training images", then "... test images") and each probe fitted ("fitting probes").
    test_features: ({layer: (N, D)}, labels (N,)) of the test images already read for
    `probed_layers(...)` (`FeatureReader`, e.g. in a forward shared with other readers):
    `test` is then not read; the accuracies equal those of the same batches read here.
    """
    needs_gradients("linear_probe")
    wrapped, model = model, unwrap(model)
    if epochs < 1 or cap < 1 or batch_size < 1:
        raise ExplainError(
            f"linear_probe needs epochs, cap and batch_size >= 1; got epochs={epochs}, "
            f"cap={cap}, batch_size={batch_size}"
        )
    train, first = first_batch(train)
    if first is None:
        raise ExplainError("linear probes got an empty training set")
    names = probed_layers(wrapped, as_float(first, preprocess), layers, output)
    opts = dict(
        cap=cap, batch_size=batch_size, preprocess=preprocess, output=output, progress=progress
    )
    xtr, ytr = extract_features(model, train, names, **opts, what="features of the training images")
    if len(ytr) < 2:  # the features are standardised by the training set's spread
        raise ExplainError(
            f"linear probes need at least 2 training images, got {len(ytr)}: a probe is "
            "standardised by the training features' spread"
        )
    if test_features is None:
        what = "features of the test images"
        test_features = extract_features(model, test, names, **opts, what=what)
    return _fit_probes((xtr, ytr), _same_layers(test_features, names), epochs, l2, progress)


def _same_layers(features: tuple[dict[str, Tensor], Tensor], names: list[str]) -> tuple:
    """`features`, checked to hold the layers `names` in that order."""
    if list(features[0]) != names:
        raise ExplainError(
            f"linear_probe's test_features hold the layers {list(features[0])}, not the "
            f"ones probed {names}: read them for probed_layers(model, images, layers)"
        )
    return features


def probed_layers(
    model: nn.Module,
    first: Tensor,
    layers: Sequence[str] | str | None = None,
    output: OutputSelector = None,
) -> list[str]:
    """The feature names `linear_probe(model, ..., layers)` reads, in its order: "input",
    then the layers (`_chosen_layers`), as `unwrap(model)` names them. first: images the
    model takes (float, normalised)."""
    if isinstance(layers, str):  # one layer, as feature_maps takes it (not its letters)
        layers = [layers]
    if layers is not None:  # `features.3` of a wrapped model
        layers = [inner_name(model, name) for name in layers]
    return [INPUT, *_chosen_layers(unwrap(model), first, layers, output)]


def _chosen_layers(
    model: nn.Module, first: Tensor, layers: Sequence[str] | None, output: OutputSelector
) -> list[str]:
    """The layers to probe, in forward order: `layers` (checked, each once, "input" left
    out; a module's name is its first call, `name #2` its second, as the summary labels
    calls), or the model's blocks (`default_probe_layers`) for None. first: images it
    takes."""
    with preserved(model):
        order = [label for label, _, _ in layer_calls(model, first, output)]
        if layers is None:
            layers = default_probe_layers(model, first, output)
            if not layers:  # the input's row alone, as if the model held nothing to probe
                raise ExplainError(
                    "the model has no layer to probe (no submodule its forward calls)"
                    + scripted_whole(model)
                )
            return layers
        # once each: a name given twice doubled its features' rows against the labels
        layers = [name for name in dict.fromkeys(layers) if name != INPUT]
        Capture(model, layers, calls=True)  # validates the names
    return sorted(layers, key=lambda n: order.index(n) if n in order else len(order))


def _fit_probes(
    train: tuple[dict[str, Tensor], Tensor],
    test: tuple[dict[str, Tensor], Tensor],
    epochs: int,
    l2: float,
    progress: Progress | None,
) -> dict[str, float]:
    """{layer: test accuracy} of one `fit_logistic` per layer on ({layer: (N, D)}, labels (N,))
    features standardised with the training set's mean and std."""
    (xtr, ytr), (xte, yte) = train, test
    if ytr.unique().numel() < 2:  # every probe would score 100 %: there is nothing to tell
        raise ExplainError(
            f"linear probes need at least 2 classes in the training labels, got only class "
            f"{ytr[0].item()}: a probe of one class is right whatever the features hold"
        )
    classes = int(max(ytr.max(), yte.max())) + 1
    result = {}
    if progress is not None:
        progress(0, len(xtr), "fitting probes")
    for done, name in enumerate(xtr, 1):
        mean, std = xtr[name].mean(0), xtr[name].std(0).clamp(min=1e-6)
        head = fit_logistic((xtr[name] - mean) / std, ytr, classes, epochs=epochs, l2=l2)
        with torch.no_grad():
            pred = head((xte[name] - mean) / std).argmax(1)
        result[name] = (pred == yte).float().mean().item()
        if progress is not None:
            progress(done, len(xtr), "fitting probes")
    return result
