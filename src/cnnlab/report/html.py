"""One self-contained HTML page per run: facts gathered part by part, rendered by one template.

Every part of every section is built on its own (`_part`): when an artefact is missing (no
metrics, no weights) or a function it needs is not there or fails, that part becomes a note
saying what is missing and the rest of the report is still written. Images are inline PNG
data URIs; the page loads nothing from anywhere (its Content-Security-Policy forbids it).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError, RunError
from cnnlab.report import plots

REQUIRED = ("spec.yaml", "config.json")  # without these a directory is not a run


@dataclass(frozen=True)
class Budget:
    """How much work each costly part may do; sized so a Fashion-MNIST report takes seconds."""

    eval_images: int = 10_000  # test images predicted (confusion matrix, accuracy per class)
    diagnose_images: int = 1000  # images for dead units / activation statistics
    gradient_images: int = 256  # labelled images for gradient flow (one batch)
    gradcam_images: int = 10  # per group: correct (one per class, at most this many classes)
    # and misclassified (the most confident mistakes)
    pair_examples: int = 6  # example images per confused pair
    confused_pairs: int = 4  # most-confused class pairs shown
    filters: int = 32  # first-layer filters shown
    map_layers: int = 6  # layers in the feature-map figure
    map_channels: int = 8  # channels per layer in the feature-map figure
    actmax_stages: int = 3  # deepest stages shown in activation maximization
    actmax_channels: int = 4  # channels per stage
    actmax_steps: int = 48  # optimisation steps per image
    probe_train: int = 2000  # training images for the linear probes
    probe_test: int = 1000  # test images for the linear probes
    probe_epochs: int = 12  # L-BFGS iterations per probe (explain default 100; 12: ~2 s)
    erf_layers: int = 6  # layers whose effective receptive field is measured
    erf_inputs: int = 16  # random inputs the ERF gradient is averaged over

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                option = f" (--{f.name.replace('_', '-')})" if f.name == "eval_images" else ""
                raise CnnlabError(
                    f"report budget {f.name}{option} must be a whole number >= 1, got {value!r}"
                )


class Missing(Exception):
    """A part cannot be built: an artefact or a function it needs is not there."""


# --- loading ----------------------------------------------------------------------------------


def check_run(path: str | Path) -> Path:
    """`path` as a Path if it is a run directory; RunError saying why not. Reads and creates
    nothing: a typo stays a typo, not a new empty directory."""
    path = Path(path)
    hint = "pass a run directory written by `cnnlab train`"
    if not path.exists():
        raise RunError(f"{path} does not exist; {hint}")
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a directory; {hint}")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise RunError(f"{path} is not a run directory: {' and '.join(missing)} missing; {hint}")
    return path


def open_run(path: str | Path) -> tuple[Any | None, str | None]:
    """(Run, None) or (None, why there is no model). RunError when `path` is not a run
    (`check_run`), or when `load_run` rejects it (e.g. weights not matching the spec)."""
    path = check_run(path)
    if not (path / "model.safetensors").is_file():
        return None, (
            f"{path / 'model.safetensors'} is missing: training has not finished "
            "(resume it with `cnnlab train ... --resume`)"
        )
    try:
        from cnnlab.train.rundir import load_run
    except ImportError:
        return None, "cnnlab.train.rundir.load_run is not available in this installation"
    return load_run(path), None


def _need(module: str, name: str) -> Callable:
    """A function of another part of cnnlab, or Missing naming it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise Missing(f"{module}.{name} is not available ({error})") from error


def _once(method):
    """Cache a context property, failures included (a missing artefact is reported once)."""
    key = "_" + method.__name__

    def get(self):
        if key not in self.__dict__:
            try:
                self.__dict__[key] = (True, method(self))
            except Exception as error:  # noqa: BLE001 - re-raised to every part that needs it
                self.__dict__[key] = (False, error)
        ok, value = self.__dict__[key]
        if not ok:
            raise value
        return value

    return property(get)


class Context:
    """What the parts share, each piece computed once on first use."""

    def __init__(self, path: Path, run: Any | None, no_run: str | None, budget: Budget) -> None:
        self.path, self.run, self.no_run, self.budget = path, run, no_run, budget
        try:
            self.config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(
                f"{path / 'config.json'} cannot be read as JSON ({error}); re-run `cnnlab train`"
            ) from error

    @_once
    def rows(self) -> list[dict]:
        file = self.path / "metrics.jsonl"
        if not file.is_file():
            raise Missing(f"{file} is missing: no epoch has been logged")
        rows = _jsonl(file)
        if not rows:
            raise Missing(f"{file} is empty: training has not completed an epoch")
        return rows

    @_once
    def model(self) -> nn.Module:
        if self.run is None:
            raise Missing(self.no_run)
        return self.run.model.eval()

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.run, "classes", None) or self.config.get("classes") or [])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = getattr(self.run, "input_shape", None) or self.config.get("input_shape")
        return tuple(shape)

    def split(self, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images (n, C, H, W), normalised float x, labels (n,)): the first n of the
        run's `split`, as the model was trained to see them."""
        self.model  # noqa: B018 - no model, no data to feed it
        try:
            data = self.run.dataset(split)
        except Exception as error:  # noqa: BLE001
            raise Missing(f"the run's {split} images could not be loaded: {error}") from error
        images, labels = data.images[:n], data.labels[:n]
        return images, self.run.preprocess(images).float(), labels

    @_once
    def test(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images, normalised float x, labels), the first eval_images of the test split."""
        return self.split("test", self.budget.eval_images)

    @_once
    def probs(self) -> torch.Tensor:
        """Softmax probabilities (N, classes) of the model on the test images, evaluated as
        the trainer evaluated them: bf16 autocast and channels_last when the run used them
        (`fast` preset, 2000 images: 3.0 s fp32 -> 0.9 s bf16 + NHWC on this CPU)."""
        _, x, _ = self.test
        model = self.model
        if self.config.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        device = next(model.parameters(), x).device
        bf16 = self.config.get("precision_used") == "bf16"
        out = []
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            for i in range(0, len(x), 500):
                out.append(model(x[i : i + 500].to(device)).float().softmax(1).cpu())
        return torch.cat(out)

    @_once
    def summary(self):
        summary = _need("cnnlab.design.summary", "summary")
        return summary(self.model, input_size=self.input_shape)

    @_once
    def layers(self) -> list[tuple[str, nn.Module, tuple]]:
        """Leaf modules in forward order with their output shape on one test image."""
        _, x, _ = self.test
        found: list[tuple[str, nn.Module, tuple]] = []
        handles = [
            m.register_forward_hook(
                lambda mod, a, out, name=name: (
                    found.append((name, mod, tuple(out.shape[1:])))
                    if isinstance(out, torch.Tensor)
                    else None
                )
            )
            for name, m in self.model.named_modules()
            if not list(m.children())
        ]
        try:
            with torch.no_grad():
                self.model(x[:1])
        finally:
            for h in handles:
                h.remove()
        return list({name: (name, m, s) for name, m, s in found}.values())

    def label(self, name: str) -> str:
        """A layer's name with its module type, for axes: "6 ReLU"."""
        try:
            kinds = {n: type(m).__name__ for n, m, _ in self.layers}
        except Exception:  # noqa: BLE001 - a label is never worth a failure
            return name
        return f"{name} {kinds[name]}" if name in kinds else name

    @_once
    def stages(self) -> list[str]:
        """The last spatial activation (else any layer) at each resolution: one per stage."""
        from cnnlab.diagnose import ACTIVATION_MODULES

        by_size: dict[tuple, str] = {}
        for name, module, shape in self.layers:
            if len(shape) == 3 and shape[1] * shape[2] > 1:
                if isinstance(module, ACTIVATION_MODULES) or shape[1:] not in by_size:
                    by_size[shape[1:]] = name
        if not by_size:
            raise Missing("the model has no layer with a spatial (C, H, W) output")
        return list(by_size.values())

    @_once
    def map_layers(self) -> list[str]:
        """Spatial activation outputs (else conv outputs), at most budget.map_layers, spread."""
        from cnnlab.diagnose import ACTIVATION_MODULES

        spatial = [(n, m) for n, m, s in self.layers if len(s) == 3 and s[1] * s[2] > 1]
        names = [n for n, m in spatial if isinstance(m, ACTIVATION_MODULES)]
        names = names or [n for n, m in spatial if isinstance(m, nn.Conv2d)]
        if not names:
            raise Missing("the model has no layer with a spatial (C, H, W) output")
        return _spread(names, self.budget.map_layers)


def _jsonl(file: Path) -> list[dict]:
    """The JSON objects of a .jsonl file, one a line; Missing naming the file and the line
    that is not one (a run killed mid-write, or an edited file)."""
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            why = f"{error.msg} at column {error.colno}" if hasattr(error, "colno") else error
            raise Missing(f"{file} line {number} is not valid JSON ({why})") from error
        if not isinstance(row, dict):
            raise Missing(f"{file} line {number} is not a JSON object: {line.strip()[:40]}")
        rows.append(row)
    return rows


def _spread(items: list, k: int) -> list:
    """At most k items, evenly spaced, first and last kept."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


# --- parts ------------------------------------------------------------------------------------


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to n for a while (None: unchanged)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _part(title: str, build: Callable[[], list[dict]], small: bool = False) -> dict:
    """Run one part's builder; a failure becomes a note instead of a crash.

    small: the part works on a few images at a time (Grad-CAM, actmax, ERF) or on small
    matrices (probes): it runs on one thread, since OpenMP's hand-offs dominate there (on the
    `fast` preset, 2-core machine under load: actmax 62 s on 2 threads vs 2.7 s on 1, probes
    16 s vs 8 s).
    """
    start = time.perf_counter()
    try:
        with _threads(1 if small else None):
            blocks, note = build(), None
    except (Missing, CnnlabError) as error:  # expected: says what is missing or unsuitable
        blocks, note = [], f"Not shown: {error}"
    except Exception as error:  # noqa: BLE001 - one broken part must not sink the report
        blocks, note = [], f"Not shown: {type(error).__name__}: {error}"
    slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
    seconds = time.perf_counter() - start
    return {"title": title, "id": slug, "blocks": blocks, "note": note, "seconds": seconds}


def _figure(src: str | None, alt: str, caption: str = "") -> dict:
    if src is None:
        raise Missing(alt)
    return {"kind": "figure", "src": src, "alt": alt, "caption": caption}


def _table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> dict:
    return {"kind": "table", "header": header, "rows": rows, "numeric": numeric or set()}


def _text(text: str) -> dict:
    return {"kind": "text", "text": text}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def _num(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


# --- section: the run -------------------------------------------------------------------------


def _machine(config: dict) -> str:
    if "machine" in config:
        return str(config["machine"])
    from cnnlab.train import cpu_name

    return (
        f"{cpu_name()}, {os.cpu_count()} cores "
        "(machine writing this report; not recorded by the run)"
    )


def section_run(ctx: Context) -> list[dict]:
    def overview():
        c = ctx.config
        items = [
            ("run", ctx.path.name),
            ("data", f"{c.get('data', '?')} ({len(ctx.classes)} classes)"),
            ("input", "×".join(str(s) for s in ctx.input_shape) + " (C×H×W)"),
        ]
        try:
            params = sum(p.numel() for p in ctx.model.parameters())
            items.append(("parameters", _num(params)))
        except Missing as error:
            items.append(("parameters", f"unknown: {error}"))
        try:
            rows = ctx.rows
            last = rows[-1]
            items += [
                ("test accuracy", _pct(last.get("test_acc"))),
                ("test accuracy with TTA (flip)", _pct(last.get("test_acc_tta"))),
                ("validation accuracy (last epoch)", _pct(last.get("val_acc"))),
                ("epochs", str(len(rows))),
                ("training time", f"{sum(r.get('seconds', 0) for r in rows):.1f} s"),
                ("wall time (with evaluation)", f"{last.get('wall', math.nan):.1f} s"),
                ("throughput", f"{np.mean([r.get('img_per_s', 0) for r in rows]):.0f} img/s"),
            ]
        except Missing as error:
            items.append(("metrics", str(error)))
        keys = ("optimizer", "lr", "batch_size", "schedule", "precision_used", "world_size")
        items.append(("recipe", ", ".join(f"{k} {c[k]}" for k in keys if k in c)))
        items.append(("torch", str(c.get("torch", torch.__version__))))
        items.append(("machine", _machine(c)))
        return [{"kind": "kv", "items": items}]

    def spec():
        return [{"kind": "pre", "text": (ctx.path / "spec.yaml").read_text()}]

    def config():
        skip = {"classes", "mean", "std"}
        items = [(k, json.dumps(v)) for k, v in ctx.config.items() if k not in skip]
        return [{"kind": "kv", "items": items}]

    return [_part("Overview", overview), _part("Spec", spec), _part("Configuration", config)]


# --- section: architecture --------------------------------------------------------------------


def section_architecture(ctx: Context) -> list[dict]:
    def table():
        s = ctx.summary
        rows = [
            [
                r.name,
                r.kind,
                "×".join(str(v) for v in r.output_shape),
                _num(r.params),
                "" if r.receptive_field is None else str(r.receptive_field),
                "" if r.jump is None else str(r.jump),
                _num(r.macs or 0),
            ]
            for r in s.rows
        ]
        header = ["layer", "kind", "output", "params", "RF (px)", "jump", "MACs"]
        totals = (
            f"{_num(s.total_params)} parameters ({_num(s.trainable_params)} trainable), "
            f"{_num(s.total_macs)} multiply-accumulates per image, "
            f"{s.activation_bytes / 2**20:.2f} MiB of activations per image."
        )
        return [_table(header, rows, {3, 4, 5, 6}), _text(totals)]

    def lints():
        warnings = ctx.summary.warnings
        if not warnings:
            return [_text("No design warnings.")]
        rows = [[w.code, str(w.layer), w.message] for w in warnings]
        return [_table(["code", "layer", "warning"], rows)]

    return [_part("Layers", table), _part("Design lints", lints)]


# --- section: training ------------------------------------------------------------------------


def section_training(ctx: Context) -> list[dict]:
    def curves():
        return [_figure(plots.curves(ctx.rows), "loss, accuracy and learning rate per epoch")]

    return [_part("Curves", curves)]


# --- section: results -------------------------------------------------------------------------


def _confusion(ctx: Context) -> np.ndarray:
    _, _, y = ctx.test
    pred = ctx.probs.argmax(1)
    k = max(len(ctx.classes), int(ctx.probs.shape[1]))
    return np.bincount((y * k + pred).numpy(), minlength=k * k).reshape(k, k)


def _class_names(ctx: Context, k: int) -> list[str]:
    names = ctx.classes
    return names if len(names) == k else [str(i) for i in range(k)]


def section_results(ctx: Context) -> list[dict]:
    def matrix():
        m = _confusion(ctx)
        acc = np.trace(m) / m.sum()
        text = _text(f"Accuracy on {m.sum()} test images (no TTA): {acc * 100:.2f} %.")
        fig = plots.confusion(m, _class_names(ctx, len(m)))
        return [text, _figure(fig, "confusion matrix, rows are true classes")]

    def per_class():
        m = _confusion(ctx)
        acc = np.diag(m) / np.maximum(m.sum(1), 1)
        names = _class_names(ctx, len(m))
        colours = [plots.BAD if a < acc.mean() - 0.05 else "C0" for a in acc]
        fig = plots.hbars(
            names, acc * 100, "accuracy (%)", "Accuracy per class", None, False, colours
        )
        return [_figure(fig, "accuracy per class", "Red: more than 5 points below the mean.")]

    def pairs():
        m = _confusion(ctx)
        off = m.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(off, axis=None)[::-1][: ctx.budget.confused_pairs]
        images, _, y = ctx.test
        pred = ctx.probs.argmax(1)
        names = _class_names(ctx, len(m))
        rows = []
        for flat in order:
            t, p = divmod(int(flat), len(m))
            if off[t, p] == 0:
                break
            idx = ((y == t) & (pred == p)).nonzero().flatten()[: ctx.budget.pair_examples]
            scale = max(1, 56 // images.shape[-1])
            thumbs = [plots.image_uri(plots.display(images[i].numpy()), scale) for i in idx]
            share = off[t, p] / max(m[t].sum(), 1)
            rows.append(
                {
                    "true": names[t],
                    "pred": names[p],
                    "count": int(off[t, p]),
                    "share": f"{share * 100:.1f} %",
                    "thumbs": thumbs,
                }
            )
        if not rows:
            return [_text("No misclassified test images.")]
        return [{"kind": "pairs", "rows": rows}]

    return [
        _part("Confusion matrix", matrix),
        _part("Accuracy per class", per_class),
        _part("Most-confused pairs", pairs),
    ]


# --- section: attention -----------------------------------------------------------------------


def _pick(ctx: Context) -> tuple[list[int], list[int]]:
    """One correct image per class (in class order), and the most confident mistakes; at
    most budget.gradcam_images of each."""
    _, _, y = ctx.test
    probs = ctx.probs
    conf, pred = probs.max(1)
    n = ctx.budget.gradcam_images
    correct = []
    for c in range(probs.shape[1]):
        hits = ((pred == y) & (y == c)).nonzero().flatten()
        if len(hits):
            correct.append(int(hits[0]))
    wrong = (pred != y).nonzero().flatten()
    wrong = wrong[conf[wrong].argsort(descending=True)][:n].tolist()
    return correct[:n], wrong


def section_attention(ctx: Context) -> list[dict]:
    def grids():
        gradcam = _need("cnnlab.explain", "gradcam")
        images, x, y = ctx.test
        probs = ctx.probs
        names = _class_names(ctx, probs.shape[1])
        blocks = []
        correct, wrong = _pick(ctx)
        for label, idx, colour in (
            ("Correct", correct, plots.GOOD),
            ("Misclassified", wrong, plots.BAD),
        ):
            if not idx:
                blocks.append(_text(f"{label}: none among the test images."))
                continue
            heat = gradcam(ctx.model, x[idx]).detach().cpu().numpy()  # (n, H, W) in [0, 1]
            p, pred = probs[idx].max(1)
            titles = [
                f"{names[int(k)]} {float(q) * 100:.0f}%\ntrue: {names[int(t)]}"
                for k, q, t in zip(pred, p, y[idx], strict=True)
            ]
            tiles = [plots.display(images[i].numpy()) for i in idx]
            fig = plots.gradcam_overlays(tiles, heat, titles, [colour] * len(idx), label)
            blocks.append(_figure(fig, f"Grad-CAM of {label.lower()} test images"))
        return [
            *blocks,  # one under the other, each the column's width: titles stay readable
            _text(
                "Title: predicted class and its probability, then the true class. Heat: Grad-CAM "
                "for the predicted class at the last spatial layer (red = most evidence)."
            ),
        ]

    return [_part("Grad-CAM", grids, small=True)]


# --- section: feature hierarchy --------------------------------------------------------------


def section_features(ctx: Context) -> list[dict]:
    def first_filters():
        filters = _need("cnnlab.explain", "filters")
        w = filters(ctx.model)[: ctx.budget.filters]  # (F, C, kh, kw) in [0, 1]
        tiles = [plots.display(f.numpy() if f.shape[0] in (1, 3) else f[:1].numpy()) for f in w]
        titles = [str(i) for i in range(len(tiles))]
        shape = "×".join(str(s) for s in w.shape[1:])
        fig = plots.image_grid(tiles, titles, ncols=min(16, len(tiles)), tile_inches=0.55)
        caption = f"{len(tiles)} filters of the first conv layer ({shape}), each scaled to [0, 1]."
        return [_figure(fig, "first-layer filters", caption)]

    def maps():
        feature_maps = _need("cnnlab.explain", "feature_maps")
        images, x, y = ctx.test
        layers = ctx.map_layers
        out = feature_maps(ctx.model, x[:1], layers)
        rows = [(ctx.label(name), out[name][0].float().cpu().numpy()) for name in layers]
        image = plots.image_uri(plots.display(images[0].numpy()), max(1, 84 // images.shape[-1]))
        fig = plots.feature_maps(rows, ctx.budget.map_channels)
        caption = f"First {ctx.budget.map_channels} channels of each layer on this test image."
        return [
            {"kind": "thumbs", "items": [image], "caption": "input"},
            _figure(fig, "feature maps through the layers", caption),
        ]

    def actmax():
        maximize = _need("cnnlab.explain", "activation_maximization")
        b = ctx.budget
        _, x, _ = ctx.test
        tiles, titles = [], []
        for layer in ctx.stages[-b.actmax_stages :]:
            channels = list(range(b.actmax_channels))
            # one restart and few steps: a glimpse, not the converged image (budget)
            r = maximize(ctx.model, layer, channels, steps=b.actmax_steps, data=x[:512], restarts=1)
            imgs = r.images.detach().float().cpu()  # (K, C, H, W), scaled per image below
            lo = imgs.amin((1, 2, 3), keepdim=True)
            imgs = (imgs - lo) / (imgs.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
            for i, c in enumerate(channels):
                tiles.append(plots.display(imgs[i].numpy()))
                ratio = "" if r.ratio is None else f"\n{float(r.ratio[i]):.1f}× data max"
                titles.append(f"{ctx.label(layer)} ch {c}{ratio}")
        fig = plots.image_grid(tiles, titles, ncols=b.actmax_channels * 2, tile_inches=1.0)
        caption = (
            f"Images optimised ({b.actmax_steps} steps) to excite channels "
            f"0-{b.actmax_channels - 1}"
            " of the last layer of each stage; k× data max: their activation over the strongest "
            "any of 512 test images gives."
        )
        return [_figure(fig, "activation maximisation images", caption)]

    def probes():
        accuracy = _probe_results(ctx)
        layers = [k for k in accuracy if k != "input"]
        labels = [ctx.label(k) for k in layers]
        fig = plots.probe(labels, [accuracy[k] for k in layers], accuracy.get("input"))
        rows = [[ctx.label(k), _pct(v)] for k, v in accuracy.items()]
        b = ctx.budget
        caption = (
            f"Computed for this report: multinomial logistic regression on each layer's pooled "
            f"features, trained on the first {b.probe_train} training images "
            f"({b.probe_epochs} L-BFGS iterations) and tested on the first {b.probe_test} test "
            "images: a small budget (cnnlab probe RUN trains longer, on more images)."
        )
        return [
            _figure(fig, "linear probe accuracy against depth", caption),
            _table(["layer", "probe test accuracy"], rows, {1}),
        ]

    return [
        _part("First-layer filters", first_filters),
        _part("Feature maps", maps, small=True),
        _part("Activation maximisation", actmax, small=True),
        _part("Linear probes", probes, small=True),
    ]


def _probe_results(ctx: Context) -> dict[str, float]:
    """Probe accuracies {layer: accuracy}, measured now on the report's small budget."""
    linear_probe = _need("cnnlab.explain", "linear_probe")
    b = ctx.budget
    _, xtr, ytr = ctx.split("train", b.probe_train)
    _, xte, yte = ctx.test
    xte, yte = xte[: b.probe_test], yte[: b.probe_test]
    train = [(xtr[i : i + 500], ytr[i : i + 500]) for i in range(0, len(xtr), 500)]
    test = [(xte[i : i + 500], yte[i : i + 500]) for i in range(0, len(xte), 500)]
    # a shorter L-BFGS budget than the default: the same for every layer, so still comparable
    try:
        layers = ctx.stages
    except Missing:
        layers = None  # no spatial stages (an MLP): explain's default, the model's blocks
    result = linear_probe(ctx.model, train, test, layers=layers, epochs=b.probe_epochs)
    return {str(k): float(v) for k, v in result.items()}


# --- section: health --------------------------------------------------------------------------


def section_health(ctx: Context) -> list[dict]:
    from cnnlab import diagnose

    def dead():
        _, x, _ = ctx.test
        d = diagnose.dead_units(ctx.model, x[: ctx.budget.diagnose_images])
        if not d.layers:
            return [_text("No ReLU-family activation found in the model.")]
        names = [ctx.label(l.name) for l in d.layers]
        series = {
            "dead channels (never > 0)": [l.dead_share * 100 for l in d.layers],
            "sparsity (activations ≤ 0)": [l.sparsity * 100 for l in d.layers],
        }
        fig = plots.grouped_hbars(names, series, "share (%)")
        caption = f"On {d.samples} test images, eval mode."
        blocks = [_figure(fig, "dead unit share and sparsity per activation", caption)]
        return blocks + _findings(diagnose.findings(dead=d))

    def flow():
        _, x, y = ctx.test
        n = ctx.budget.gradient_images
        f = diagnose.gradient_flow(ctx.model, [(x[:n], y[:n])])
        flags = [k for k, on in (("vanishing", f.vanishing), ("exploding", f.exploding)) if on]
        flagged = "; " + ", ".join(flags) if flags else ""
        title = f"Gradient L2 per layer (first/last = {f.ratio:.2g}{flagged})"
        fig = plots.hbars(
            [f"{l.name} {l.kind}" for l in f.layers],
            [l.l2 for l in f.layers],
            "‖∂loss/∂weight‖₂",
            title,
            log=True,
        )
        caption = f"Cross-entropy on {f.samples} labelled test images, train mode (model restored)."
        return [
            _figure(fig, "gradient norm per layer", caption),
            *_findings(diagnose.findings(flow=f)),
        ]

    def history():
        return [
            _figure(
                plots.diagnose_history(ctx.rows),
                "no per-epoch diagnostics logged (train with diagnose_every > 0)",
            )
        ]

    def rf():
        erf = _need("cnnlab.explain", "effective_receptive_field")
        rows, names, theoretical, effective = [], [], [], []
        for layer in _spread(ctx.map_layers, ctx.budget.erf_layers):
            e = erf(ctx.model, layer, ctx.input_shape, ctx.budget.erf_inputs)
            names.append(ctx.label(layer))
            theoretical.append(e.theoretical or 0)
            effective.append(e.measured)
            rows.append([names[-1], str(e.theoretical), str(e.measured), e.theoretical_source])
        fig = plots.receptive_fields(names, theoretical, effective)
        header = ["layer", "theoretical (px)", "effective (px)", "theoretical from"]
        caption = (
            f"Effective: side of the centred square holding 95 % of |∂ centre unit / ∂ input|, "
            f"averaged over {ctx.budget.erf_inputs} random inputs."
        )
        return [
            _figure(fig, "theoretical and effective receptive field", caption),
            _table(header, rows, {1, 2}),
        ]

    return [
        _part("Dead units", dead),
        _part("Gradient flow", flow, small=True),
        _part("During training", history),
        _part("Receptive field", rf, small=True),
    ]


def _findings(found) -> list[dict]:
    return [{"kind": "finding", "message": f.message, "fix": f.fix} for f in found]


# --- the page ---------------------------------------------------------------------------------

SECTIONS = (
    ("run", "The run", section_run),
    ("architecture", "Architecture", section_architecture),
    ("training", "Training curves", section_training),
    ("results", "Results", section_results),
    ("attention", "Attention", section_attention),
    ("features", "Feature hierarchy", section_features),
    ("health", "Health", section_health),
)


def render(path: str | Path, budget: Budget | None = None) -> tuple[str, dict]:
    """The report's HTML for run directory `path`, and timings {section: seconds}."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    path = Path(path)
    run, no_run = open_run(path)
    ctx = Context(path, run, no_run, budget or Budget())
    start = time.perf_counter()
    sections, timings = [], {}
    for key, title, build in SECTIONS:
        tick = time.perf_counter()
        parts = build(ctx)
        for part in parts:
            part["id"] = f"{key}-{part['id']}"
        sections.append({"id": key, "title": title, "parts": parts})
        timings[key] = time.perf_counter() - tick
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    html = env.get_template("report.html.j2").render(
        title=f"cnnlab report: {path.name}",
        sections=sections,
        no_run=no_run,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=time.perf_counter() - start,
    )
    return html, timings


def report_path(path: str | Path, out: str | Path | None = None) -> Path:
    """Where the report goes: RUN/report.html (nothing is created: RUN is checked to exist by
    `write_report`), or `out` (a file, or a directory to hold report.html), whose directory is
    created. CnnlabError when it cannot be."""
    if out is None:
        return Path(path) / "report.html"
    target = Path(out).expanduser()
    if target.is_dir() or str(out).endswith(("/", os.sep)):  # `--out reports/`: a directory
        target = target / "report.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CnnlabError(
            f"cannot create {target.parent} for the report ({error.strerror}); choose another --out"
        ) from error
    return target


def write_report(
    path: str | Path,
    out: str | Path | None = None,
    budget: Budget | None = None,
    timings: dict | None = None,
) -> Path:
    """Write `RUN/report.html` (or `out`, see `report_path`) for the run directory `path`;
    return its path. `timings`, if given, receives {section: seconds}."""
    check_run(path)  # first, and creating nothing: a mistyped RUN leaves no trace
    target = report_path(path, out)  # before the costly part: a bad --out fails at once
    html, spent = render(path, budget)
    if timings is not None:
        timings.update(spent)
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        raise CnnlabError(f"cannot write the report to {target} ({error.strerror})") from error
    return target
