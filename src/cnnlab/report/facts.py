"""What the report shows, gathered from library calls into frozen data (torchinfo's way: facts
first, rendering after). `gather(path, run)` returns one `Facts`; `show.py` draws it.

Each part of the page is a `Part`: its facts, or a note saying why they cannot be had (no
weights, no metrics, no spatial layer). strict=True raises there instead, so that a broken
library call fails a test rather than becoming a line of text in the page.

The run's model is only read: evaluated with `cnnlab.train.evaluate.predict_logits`, looked
inside through `cnnlab.inspect`, `cnnlab.explain` and `cnnlab.diagnose`, each of which gives
it back as it was. Strings from the run (class-folder names, the run's own name) are made
printable here, so no renderer meets a name that is not valid UTF-8.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from cnnlab import diagnose, explain, inspect
from cnnlab.design.activations import activation_of
from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError
from cnnlab.explain.actmax import channel_activation, data_ratio
from cnnlab.inspect.progress import Progress
from cnnlab.report import sources
from cnnlab.report.shared import probe_layers, recorded, shared_pass
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import Run

__all__ = ["Budget", "Facts", "Part", "gather", "printable", "why"]


@dataclass(frozen=True)
class Part:
    """One part's facts (`value`), or `note`: why the part cannot be made."""

    value: Any = None
    note: str | None = None
    seconds: float = 0.0  # spent gathering it


@dataclass(frozen=True)
class Overview:
    name: str
    data: str
    classes: tuple[str, ...]  # printable names, index = class
    input_shape: tuple[int, ...]
    parameters: int | None  # None: no model
    config: Mapping[str, Any]  # config.json, strings made printable
    machine: str  # as the run recorded it, or a note that it did not
    spec_text: str


@dataclass(frozen=True)
class Results:
    """The model on the first `n` test images, no TTA, as the trainer evaluated them."""

    evaluation: Any  # cnnlab.train.evaluate.Evaluation
    probs: torch.Tensor  # (n, K) softmax probabilities
    labels: torch.Tensor  # (n,)


@dataclass(frozen=True)
class ConfusedPair:
    true: int
    predicted: int
    count: int
    share: float  # of the true class's images
    images: torch.Tensor  # (k, C, H, W) uint8 examples


@dataclass(frozen=True)
class GradcamGroup:
    label: str  # "Correct" | "Misclassified"
    images: torch.Tensor  # (n, C, H, W) uint8
    heat: np.ndarray  # (n, H, W) in [0, 1]
    predicted: tuple[int, ...]
    confidence: tuple[float, ...]
    true: tuple[int, ...]
    layer: str | None  # the layer the maps are taken at (None: explain's default)


@dataclass(frozen=True)
class FeatureMaps:
    image: torch.Tensor  # (C, H, W) uint8, the input
    layers: tuple[tuple[str, np.ndarray], ...]  # (layer label, maps (C', H', W'))
    # labels of the rows that are no activation module's output (a conv or BatchNorm whose
    # activation, if any, the forward applies itself: F.relu(x))
    before_activation: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActmaxTile:
    layer: str  # label
    channel: int
    image: np.ndarray  # (C, H, W) in [0, 1]
    ratio: float | None  # activation over the strongest any test image gives
    compared: int  # test images the ratio's strongest is taken over


@dataclass(frozen=True)
class Probes:
    """Linear-probe accuracies {layer label or "input": accuracy}, and the images used (the
    budget's counts, or fewer where the split holds fewer)."""

    accuracy: Mapping[str, float]
    train: int
    test: int


@dataclass(frozen=True)
class ErfRow:
    layer: str  # label
    theoretical: int | None
    measured: int
    source: str  # where the theoretical size comes from


@dataclass(frozen=True)
class Health:
    """A diagnose measurement with its layer labels and what `diagnose.findings` says of it."""

    result: Any  # diagnose.DeadUnits | diagnose.GradientFlow
    labels: tuple[str, ...]
    findings: tuple[Any, ...]  # diagnose.Finding


@dataclass(frozen=True)
class Facts:
    """Everything the page shows. `parts` maps a part's key (see show.SECTIONS) to it."""

    overview: Overview
    no_run: str | None  # why there is no model, or None
    budget: Budget
    parts: Mapping[str, Part] = field(default_factory=dict)
    generated: str = ""  # UTC time


def printable(text: str) -> str:
    """`text` as valid UTF-8 for the page: bytes a file name had that are not UTF-8 (Python
    keeps them as lone surrogates) become `\\xe9`-style escapes, so the name stays readable
    and distinct instead of crashing the page's encoder."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate not from a file name (e.g. "\\ud800" in JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _printable_json(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list | tuple):
        return [_printable_json(v) for v in value]
    if isinstance(value, dict):
        return {printable(str(k)): _printable_json(v) for k, v in value.items()}
    return value


# --- gathering ----------------------------------------------------------------------------------


@contextmanager
def _one_thread(small: bool) -> Iterator[None]:
    """torch's intra-op threads at 1 for a part that works on a few images or small matrices
    (OpenMP's hand-offs dominate there: `fast` preset, 2-core machine under load, actmax 62 s
    on 2 threads vs 2.7 s on 1, probes 16 s vs 8 s); the count is put back as it was."""
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def why(error: Exception) -> str:
    """A failure as the page says it: a CnnlabError's message names what is missing or
    unsuitable; anything else is a bug, shown with its type so that it is not mistaken for
    a missing artefact."""
    return str(error) if isinstance(error, CnnlabError) else f"{type(error).__name__}: {error}"


def _part(build: Callable[[], Any], strict: bool, small: bool = False) -> Part:
    """Run one part's gatherer: its facts, or (strict=False) a note saying why there are none;
    strict=True raises instead."""
    start = time.perf_counter()
    try:
        with _one_thread(small):
            value = build()
    except Exception as error:
        if strict:
            raise
        return Part(note=f"Not shown: {why(error)}", seconds=time.perf_counter() - start)
    return Part(value, seconds=time.perf_counter() - start)


def _overview(src: Sources) -> Overview:
    config = _printable_json(dict(src.config))
    model = src.run.model if src.run is not None else None
    # an imported run's weights were trained elsewhere: no machine of cnnlab's to record
    why = "imported: trained elsewhere" if "imported" in config else (
        "trained before cnnlab recorded the machine"
    )  # fmt: skip
    machine = config.get("machine") or (
        f"not recorded by the run ({why}), {os.cpu_count()} cores on the machine writing "
        "this report"
    )
    return Overview(
        name=printable(src.path.name),
        data=str(config.get("data", "?")),
        classes=tuple(printable(str(c)) for c in src.classes),
        input_shape=tuple(src.input_shape),
        parameters=None if model is None else sum(p.numel() for p in model.parameters()),
        config=config,
        machine=str(machine),
        spec_text=printable(src.spec_text()),
    )


def gather(
    path: str | Path,
    run: Run | None,
    no_run: str | None = None,
    budget: Budget | None = None,
    *,
    strict: bool = False,
    progress: Progress | None = None,
) -> Facts:
    """The facts of the run directory `path` (its loaded `run`, or None and `no_run` saying why
    there is no model). The run's model, torch's thread count and the RNG are left as they were.
    progress: progress(parts done, parts, the part gathered next) before each part, and
    progress(parts, parts, "") at the end.
    """
    src = Sources(Path(path), run, no_run, budget or Budget())
    parts: dict[str, Part] = {}
    for done, (key, (build, small)) in enumerate(GATHERERS.items()):
        if progress is not None:  # before: a part's name is what the bar waits on
            progress(done, len(GATHERERS), key)
        parts[key] = _part(lambda build=build: build(src), strict, small)
    if progress is not None:
        progress(len(GATHERERS), len(GATHERERS), "")
    return Facts(
        overview=_overview(src),
        no_run=no_run,
        budget=src.budget,
        parts=MappingProxyType(parts),  # read-only, as the rest of Facts
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


# --- the parts' gatherers: Sources in, plain data out --------------------------------------------


def _metrics(src: Sources) -> tuple[dict, ...]:
    return tuple(src.metrics)


def _summary(src: Sources):
    return summary(src.model, input_size=src.input_shape)


def _results(src: Sources) -> Results:
    evaluation, probs = src.evaluation
    return Results(evaluation, probs, src.test[2])


def _confused(src: Sources) -> tuple[ConfusedPair, ...]:
    """The most-confused (true, predicted) pairs, largest count first, with examples."""
    evaluation, probs = src.evaluation
    m = np.array(evaluation.confusion)  # (K, K), rows = true class
    off = m.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1][: src.budget.confused_pairs]
    images, _, y = src.test
    pred = probs.argmax(1)
    pairs = []
    for flat in order:
        t, p = divmod(int(flat), len(m))
        if off[t, p] == 0:
            break
        idx = ((y == t) & (pred == p)).nonzero().flatten()[: src.budget.pair_examples]
        share = float(off[t, p] / max(m[t].sum(), 1))
        pairs.append(ConfusedPair(t, p, int(off[t, p]), share, images[idx]))
    return tuple(pairs)


def pick(labels: torch.Tensor, probs: torch.Tensor, n: int) -> tuple[list[int], list[int]]:
    """Indices of one correctly classified image per class (class order) and of the most
    confident mistakes (most confident first); at most n of each."""
    conf, pred = probs.max(1)
    correct = []
    for c in range(probs.shape[1]):
        hits = ((pred == labels) & (labels == c)).nonzero().flatten()
        if len(hits):
            correct.append(int(hits[0]))
    wrong = (pred != labels).nonzero().flatten()
    wrong = wrong[conf[wrong].argsort(descending=True, stable=True)][:n].tolist()
    return correct[:n], wrong


def _gradcam(src: Sources) -> tuple[GradcamGroup, ...]:
    images, x, y = src.test
    _, probs = src.evaluation
    groups = []
    picked = pick(y, probs, src.budget.gradcam_images)
    layer = src.gradcam_layer
    for label, idx in zip(("Correct", "Misclassified"), picked, strict=True):
        heat = np.zeros((0, *x.shape[2:]))
        if idx:
            heat = explain.gradcam(src.model, x[idx], layer=layer).detach().cpu().numpy()
        conf, pred = probs[idx].max(1)
        groups.append(
            GradcamGroup(
                label,
                images[idx],
                heat,
                tuple(pred.tolist()),
                tuple(conf.tolist()),
                tuple(y[idx].tolist()),
                layer,
            )  # fmt: skip
        )
    return tuple(groups)


def _filters(src: Sources) -> torch.Tensor:
    return explain.filters(src.model)[: src.budget.filters]  # (F, C, kh, kw) in [0, 1]


def _maps(src: Sources) -> FeatureMaps:
    images, x, _ = src.test
    layers = src.map_layers
    out = explain.feature_maps(src.model, x[:1], layers)
    rows = tuple((src.label(n), out[n][0].float().cpu().numpy()) for n in layers)
    before = tuple(src.label(n) for n in layers if activation_of(src.module(n)) is None)
    return FeatureMaps(images[0], rows, before)


def _actmax(src: Sources) -> tuple[ActmaxTile, ...]:
    """Each of the deepest stages' first channels: explain's image (one restart and few
    steps: a glimpse, not the converged image; budget) and its ratio to the strongest
    activation the first 512 test images give (`stage_maxima`: one pass for all stages,
    where explain's `data=` ran one per stage). The value range and size explain reads
    from data it is given: the first batch's (256 images)."""
    b = src.budget
    _, x, _ = src.test
    width = {name: shape[1] for name, shape in src.traced}  # stages are (1, C, H, W)
    chosen = {
        layer: list(range(min(b.actmax_channels, width[layer])))
        for layer in src.stages[-b.actmax_stages :]
    }
    data = x[:512]
    first = data[:256]  # explain's first batch of `data`: its range and size
    value_range = (first.min().item(), first.max().item())
    # objective: the unit show_actmax's caption names
    asked = dict(steps=b.actmax_steps, restarts=1, objective="centre", value_range=value_range)
    found = {
        layer: explain.activation_maximization(
            src.model, layer, channels, input_size=tuple(first.shape[1:]), **asked
        )
        for layer, channels in chosen.items()
    }
    best = stage_maxima(src.model, chosen, data)
    tiles = []
    for layer, r in found.items():
        imgs = r.images.detach().float().cpu()  # (K, C, H, W), each scaled to [0, 1]
        lo = imgs.amin((1, 2, 3), keepdim=True)
        imgs = (imgs - lo) / (imgs.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
        ratios = data_ratio(r.activation.detach().float().cpu(), best[layer])
        for i, c in enumerate(chosen[layer]):
            tiles.append(
                ActmaxTile(src.label(layer), c, imgs[i].numpy(), float(ratios[i]), len(data))
            )
    return tuple(tiles)


def stage_maxima(
    model: torch.nn.Module, chosen: Mapping[str, list[int]], data: torch.Tensor
) -> dict[str, torch.Tensor]:
    """{layer: (K,) the strongest centre-unit activation of each chosen channel over `data`}
    for maps (N, C, H, W) with channels on dim 1, from one eval-mode, no-grad pass in
    batches of 256 capturing every layer at once: a pass per layer cost a model forward of
    every image per layer (MONAI's SwinUNETR, 64 px: 10.7 s a stage)."""
    best = {layer: torch.full((len(c),), -torch.inf) for layer, c in chosen.items()}
    with (
        inspect.preserved(model),
        inspect.Capture(model, list(chosen), calls=True) as cap,
        torch.no_grad(),
    ):
        for batch, _ in inspect.batches(data, 256):
            inspect.forward(model, batch, logits=False)
            for layer, channels in chosen.items():
                acts = cap.tensor(layer)  # (B, C, H, W)
                per_image = torch.stack(
                    [channel_activation(acts, _every(acts, c), "centre") for c in channels], 1
                )  # (B, K)
                best[layer] = torch.maximum(best[layer], per_image.amax(0).float().cpu())
    return best


def _every(acts: torch.Tensor, channel: int) -> torch.Tensor:
    """(B,) `channel` for each of acts' B rows: channel_activation's channel per row."""
    return torch.full((len(acts),), channel, device=acts.device)


def _probes(src: Sources) -> Probes:
    """Probe accuracies {layer label or "input": accuracy}, on the report's small budget; the
    test images' features from the pass shared with the dead units (`_shared_pass`)."""
    b = src.budget
    _, xtr, ytr = src.split("train", b.probe_train)
    _, xte, yte = src.test
    xte, yte = xte[: b.probe_test], yte[: b.probe_test]
    features = shared_pass(src, xtr[:1])[0]
    # a shorter L-BFGS budget than the default: the same for every layer, so still comparable
    result = explain.linear_probe(
        src.model, (xtr, ytr), (xte, yte), layers=probe_layers(src), epochs=b.probe_epochs,
        test_features=features,
    )  # fmt: skip
    accuracy = {k if k == "input" else src.label(k): float(v) for k, v in result.items()}
    return Probes(accuracy, len(ytr), len(yte))


def _dead(src: Sources) -> Health:
    _, x, _ = src.test
    d = diagnose.dead_units(src.model, x[: src.budget.diagnose_images], activations=recorded(src))
    # "(frozen)" as the gradient flow's bars say it: no training step made or can revive
    # those dead units, and the bar alone reads as a training problem
    labels = tuple(
        src.label(layer.name) + (" (frozen)" if layer.frozen else "") for layer in d.layers
    )
    return Health(d, labels, tuple(diagnose.findings(dead=d)))


def _flow(src: Sources) -> Health:
    _, x, y = src.test
    n = src.budget.gradient_images
    train = diagnose.train_mode_logits(src.model, x)  # else: aux logits in train mode
    f = diagnose.gradient_flow(src.model, [(x[:n], y[:n])], train=train)
    # "(frozen)" or "(tied: also dec)" as `cnnlab diagnose` notes them: a frozen layer's bar is
    # measured but judged by no finding, and without the note reads as a vanishing gradient
    labels = tuple(
        f"{layer.label} {layer.kind}" + (f" ({layer.note})" if layer.note else "")
        for layer in f.layers
    )
    return Health(f, labels, tuple(diagnose.findings(flow=f)))


def _erf(src: Sources) -> tuple[ErfRow, ...]:
    rows = []
    for layer in sources.spread(src.map_layers, src.budget.erf_layers):
        e = explain.effective_receptive_field(
            src.model, layer, src.input_shape, src.budget.erf_inputs
        )
        rows.append(ErfRow(src.label(layer), e.theoretical, e.measured, e.theoretical_source))
    return tuple(rows)


# key: (gatherer, small: runs on one thread). Order = the order they run and are timed in.
GATHERERS: dict[str, tuple[Callable[[Sources], Any], bool]] = {
    "metrics": (_metrics, False),
    "summary": (_summary, False),
    "results": (_results, False),
    "confused": (_confused, False),
    "gradcam": (_gradcam, True),
    "filters": (_filters, False),
    "maps": (_maps, True),
    "actmax": (_actmax, True),
    "probes": (_probes, True),
    "dead": (_dead, False),
    "flow": (_flow, True),
    "erf": (_erf, True),
}
