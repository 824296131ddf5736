"""The report's page drawn from its `Facts`: each part's facts become blocks (figure, table,
key-value list, text, ...) that one Jinja template lays out. Nothing here runs the model or
reads the run directory; the figures are `plots`' functions of the facts' numbers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cnnlab.design.summary.render import call_label
from cnnlab.diagnose import hidden_line
from cnnlab.errors import ReportError
from cnnlab.report import plots
from cnnlab.report.facts import Facts, Part, Probes, why
from cnnlab.train.evaluate import tta_label
from cnnlab.train.rundir import images_per_second

Blocks = list[dict]
Show = Callable[[Any, Facts], Blocks]


def _figure(src: str | None, alt: str, caption: str = "") -> dict:
    if src is None:
        raise ReportError(alt)
    return {"kind": "figure", "src": src, "alt": alt, "caption": caption}


def _table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> dict:
    return {"kind": "table", "header": header, "rows": rows, "numeric": numeric or set()}


def _text(text: str) -> dict:
    return {"kind": "text", "text": text}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def _num(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _names(facts: Facts, k: int) -> list[str]:
    """Class names for k classes: the run's, or 0..k-1 when they do not match the model."""
    names = list(facts.overview.classes)
    return names if len(names) == k else [str(i) for i in range(k)]


def _findings(found) -> Blocks:
    return [{"kind": "finding", "message": f.message, "fix": f.fix} for f in found]


# --- the run ------------------------------------------------------------------------------------


def show_overview(_, facts: Facts) -> Blocks:
    o, metrics = facts.overview, facts.parts["metrics"]
    items = [
        ("run", o.name),
        ("data", f"{o.data} ({len(o.classes)} classes)"),
        ("classes", ", ".join(o.classes[:30]) + (", …" if len(o.classes) > 30 else "")),
        ("input", "×".join(str(s) for s in o.input_shape) + " (C×H×W)"),
        ("parameters", f"unknown: {facts.no_run}" if o.parameters is None else _num(o.parameters)),
    ]
    if metrics.value is None:
        items.append(("metrics", (metrics.note or "").removeprefix("Not shown: ")))
    else:
        rows = metrics.value
        last, views = rows[-1], tta_label(o.config)
        tta = [(f"test accuracy with TTA ({views})", _pct(last.get("test_acc_tta")))]
        items += [
            ("test accuracy", _pct(last.get("test_acc"))),
            *(tta if views else []),  # a run with no views (digits) repeated its plain figure
            ("validation accuracy (last epoch)", _pct(last.get("val_acc"))),
            ("epochs", str(len(rows))),
            ("training time", f"{sum(r.get('seconds', 0) for r in rows):.1f} s"),
            ("wall time (with evaluation)", f"{last.get('wall', math.nan):.1f} s"),
            ("throughput (whole run)", f"{images_per_second(rows):.0f} img/s"),
        ]
    c = o.config
    keys = ("optimizer", "lr", "batch_size", "schedule", "precision_used", "world_size")
    recipe = ", ".join(f"{k} {c[k]}" for k in keys if k in c)
    if not recipe and "imported" in c:  # cnnlab import records the weights, not how they came
        recipe = "not recorded: the weights were trained elsewhere (cnnlab import)"
    items.append(("recipe", recipe))
    items.append(("torch", str(c.get("torch", torch.__version__))))
    items.append(("machine", o.machine))
    return [{"kind": "kv", "items": items}]


def show_spec(_, facts: Facts) -> Blocks:
    return [{"kind": "pre", "text": facts.overview.spec_text}]


def show_config(_, facts: Facts) -> Blocks:
    skip = {"classes", "mean", "std"}
    config = facts.overview.config
    return [
        {"kind": "kv", "items": [(k, json.dumps(v)) for k, v in config.items() if k not in skip]}
    ]


# --- architecture and training ------------------------------------------------------------------


def show_layers(s, facts: Facts) -> Blocks:
    rows = [
        [
            call_label(r.name or "(model)", r.call),  # a module's second call: `relu #2`
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


def show_lints(s, facts: Facts) -> Blocks:
    if not s.warnings:
        return [_text("No design warnings.")]
    rows = [[w.code, str(w.layer), w.message] for w in s.warnings]
    return [_table(["code", "layer", "warning"], rows)]


def show_curves(rows, facts: Facts) -> Blocks:
    figure = plots.curves(rows, tta_label(facts.overview.config))
    return [_figure(figure, "loss, accuracy and learning rate per epoch")]


# --- results ------------------------------------------------------------------------------------


def show_matrix(results, facts: Facts) -> Blocks:
    e = results.evaluation
    m = np.array(e.confusion)
    text = _text(f"Accuracy on {e.n} test images (no TTA): {e.accuracy * 100:.2f} %.")
    fig = plots.confusion(m, _names(facts, len(m)))
    return [text, _figure(fig, "confusion matrix, rows are true classes")]


def show_per_class(results, facts: Facts) -> Blocks:
    per_class = results.evaluation.per_class  # None: no test image of the class
    seen = [a for a in per_class if a is not None]
    mean = sum(seen) / len(seen) if seen else 0.0
    colours = [plots.BAD if a is not None and a < mean - 0.05 else "C0" for a in per_class]
    names = [
        name if a is not None else f"{name} (no images)"  # no bar, not a 0 % one
        for name, a in zip(_names(facts, len(per_class)), per_class, strict=True)
    ]
    acc = [0.0 if a is None else a * 100 for a in per_class]
    fig = plots.hbars(names, acc, "accuracy (%)", "Accuracy per class", None, False, colours)
    note = "Red: more than 5 points below the mean."
    if len(seen) < len(per_class):
        note += " A class marked (no images) has none among the test images: no accuracy."
    return [_figure(fig, "accuracy per class", note)]


def show_pairs(pairs, facts: Facts) -> Blocks:
    if not pairs:
        return [_text("No misclassified test images.")]
    k = len(facts.parts["results"].value.evaluation.confusion)
    names = _names(facts, k)
    rows = []
    for pair in pairs:
        scale = max(1, 56 // pair.images.shape[-1])
        rows.append(
            {
                "true": names[pair.true],
                "pred": names[pair.predicted],
                "count": pair.count,
                "share": f"{pair.share * 100:.1f} %",
                "thumbs": [plots.image_uri(plots.display(i.numpy()), scale) for i in pair.images],
            }
        )
    return [{"kind": "pairs", "rows": rows}]


def show_gradcam(groups, facts: Facts) -> Blocks:
    blocks = []
    for g in groups:
        if not len(g.images):
            blocks.append(_text(f"{g.label}: none among the test images."))
            continue
        names = _names(facts, len(facts.parts["results"].value.evaluation.confusion))
        titles = [
            f"{names[k]} {q * 100:.0f}%\ntrue: {names[t]}"
            for k, q, t in zip(g.predicted, g.confidence, g.true, strict=True)
        ]
        tiles = [plots.display(i.numpy()) for i in g.images]
        colour = plots.GOOD if g.label == "Correct" else plots.BAD
        fig = plots.gradcam_overlays(tiles, g.heat, titles, [colour] * len(tiles), g.label)
        blocks.append(_figure(fig, f"Grad-CAM of {g.label.lower()} test images"))
    layer = next((g.layer for g in groups if g.layer), None)
    at = f"at {layer}, the last spatial layer" if layer else "at the last spatial layer"
    return [
        *blocks,  # one under the other, each the column's width: titles stay readable
        _text(
            "Title: predicted class and its probability, then the true class. Heat: Grad-CAM "
            f"for the predicted class {at} (red = most evidence)."
        ),
    ]


# --- feature hierarchy --------------------------------------------------------------------------


def show_filters(w, facts: Facts) -> Blocks:
    tiles = [plots.display(f.numpy() if f.shape[0] in (1, 3) else f[:1].numpy()) for f in w]
    titles = [str(i) for i in range(len(tiles))]
    shape = "×".join(str(s) for s in w.shape[1:])
    fig = plots.image_grid(tiles, titles, ncols=min(16, len(tiles)), tile_inches=0.55)
    caption = f"{len(tiles)} filters of the first conv layer ({shape}), each scaled to [0, 1]."
    return [_figure(fig, "first-layer filters", caption)]


def show_maps(maps, facts: Facts) -> Blocks:
    image = maps.image
    uri = plots.image_uri(plots.display(image.numpy()), max(1, 84 // image.shape[-1]))
    channels = facts.budget.map_channels
    fig = plots.feature_maps(list(maps.layers), channels)
    caption = (
        f"First {channels} channels of each layer on this test image, each map scaled to its "
        "own range (dark: its lowest value, yellow: its highest), so brightness does not "
        "compare between maps." + _before_note(maps)
    )
    return [
        {"kind": "thumbs", "items": [uri], "caption": "input"},
        _figure(fig, "feature maps through the layers", caption),
    ]


def _before_note(maps) -> str:
    """What the rows of a conv or BatchNorm show: the layer's own output, not activated."""
    before = maps.before_activation
    if not before:
        return ""
    return (
        f" {', '.join(before)}: the layer's own output, before any activation the model's "
        "forward applies itself (F.relu(x) is no layer's output), so its negative values show "
        "too; these are the layers the explorer and cnnlab visualize --maps show."
    )


ACTMAX_TILE = 1.4  # inches a tile of activation maximisation: its title's width
ACTMAX_LABEL_CHARS = 24  # a layer's label in a tile's title: 7-pt characters within the tile


def actmax_title(tile) -> str:
    """A tile's title: the channel, and its activation against the strongest a test image
    gives. A channel no test image makes positive (a dead ReLU) has no such ratio (nan): the
    title said 'nan× data max'; it says the channel never fires on them."""
    title = f"{plots.layer_label(tile.layer, ACTMAX_LABEL_CHARS)}\nch {tile.channel}"
    if tile.ratio is None:
        return title
    if math.isnan(tile.ratio):
        return f"{title}\nnever > 0 on data"
    return f"{title}\n{tile.ratio:.1f}× data max"


def show_actmax(tiles, facts: Facts) -> Blocks:
    b = facts.budget
    titles = [actmax_title(t) for t in tiles]
    images = [plots.display(t.image) for t in tiles]
    # one stage a row, its channels side by side: two stages a row of 1-inch tiles put
    # 'layer1.1.bn2 BatchNorm2d ch 0' over its neighbours' titles
    fig = plots.image_grid(images, titles, ncols=b.actmax_channels, tile_inches=ACTMAX_TILE)
    # the report maximises the centre unit (explain's default objective), so what the data
    # is compared on, and never makes positive, is that unit: the channel's map may well be
    # positive elsewhere (a BatchNorm output is, on about half its positions)
    caption = (
        f"Images optimised ({b.actmax_steps} steps) to excite the first "
        f"{b.actmax_channels} channels (all, where it has fewer)"
        " of the last layer of each stage, each at its centre unit; k× data max: that unit's "
        f"activation over the strongest any of {tiles[0].compared} test images gives it."
    )
    if any(t.ratio is not None and math.isnan(t.ratio) for t in tiles):
        caption += (
            " Never > 0 on data: no test image makes the channel's centre unit positive (no ratio)."
        )
    return [_figure(fig, "activation maximisation images", caption)]


def show_probes(probes: Probes, facts: Facts) -> Blocks:
    accuracy = probes.accuracy
    layers = [k for k in accuracy if k != "input"]
    fig = plots.probe(layers, [accuracy[k] for k in layers], accuracy.get("input"))
    rows = [[k, _pct(v)] for k, v in accuracy.items()]
    b = facts.budget
    caption = (
        f"Computed for this report: multinomial logistic regression on each layer's pooled "
        f"features, trained on the first {probes.train} training images "
        f"({b.probe_epochs} L-BFGS iterations) and tested on the first {probes.test} test "
        "images: a small budget (cnnlab probe RUN trains longer, on more images)."
    )
    return [
        _figure(fig, "linear probe accuracy against depth", caption),
        _table(["layer", "probe test accuracy"], rows, {1}),
    ]


# --- health -------------------------------------------------------------------------------------


def show_dead(health, facts: Facts) -> Blocks:
    d = health.result
    unseen = [_text(hidden_line(d.hidden))] if d.hidden else []
    if not d.layers:
        return [_text("No ReLU-family activation found in the model."), *unseen]
    series = {
        "dead channels (never > 0)": [layer.dead_share * 100 for layer in d.layers],
        "sparsity (activations ≤ 0)": [layer.sparsity * 100 for layer in d.layers],
    }
    fig = plots.grouped_hbars(list(health.labels), series, "share (%)")
    caption = f"On {d.samples} test images, eval mode."
    blocks = [_figure(fig, "dead unit share and sparsity per activation", caption), *unseen]
    return blocks + _findings(health.findings)


def show_flow(health, facts: Facts) -> Blocks:
    f = health.result
    flags = [k for k, on in (("vanishing", f.vanishing), ("exploding", f.exploding)) if on]
    flagged = "; " + ", ".join(flags) if flags else ""
    title = f"Gradient L2 per layer (first/last = {f.ratio:.2g}{flagged})"
    values = [layer.l2 for layer in f.layers]
    fig = plots.hbars(list(health.labels), values, "‖∂loss/∂weight‖₂", title, log=True)
    mode = (
        "train mode (model restored)"
        if f.train
        else "eval mode (in train mode the model returns more than the logits)"
    )
    caption = f"Cross-entropy on {f.samples} labelled test images, {mode}."
    return [_figure(fig, "gradient norm per layer", caption), *_findings(health.findings)]


def show_history(rows, facts: Facts) -> Blocks:
    fig = plots.diagnose_history(rows)
    if fig is None:  # the run's choice (the default), not a part that failed: no note for it
        return [
            _text(
                "No per-epoch diagnostics were logged (cnnlab train --diagnose-every N; "
                "diagnose_every in Python)."
            )
        ]
    return [_figure(fig, "per-epoch diagnostics")]


def show_erf(rows, facts: Facts) -> Blocks:
    names = [r.layer for r in rows]
    fig = plots.receptive_fields(
        names, [r.theoretical or 0 for r in rows], [r.measured for r in rows]
    )
    table = [[r.layer, str(r.theoretical), str(r.measured), r.source] for r in rows]
    header = ["layer", "theoretical (px)", "effective (px)", "theoretical from"]
    caption = (
        f"Effective: side of the centred square holding 95 % of |∂ centre unit / ∂ input|, "
        f"averaged over {facts.budget.erf_inputs} random inputs."
    )
    return [
        _figure(fig, "theoretical and effective receptive field", caption),
        _table(header, table, {1, 2}),
    ]


# --- the page -----------------------------------------------------------------------------------

# (section key, title, its parts: (title, key of its facts in Facts.parts, renderer)). A part
# without a key renders from the overview; a part whose facts are missing shows their note.
SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str | None, Show], ...]], ...] = (
    ("run", "The run", (
        ("Overview", None, show_overview),
        ("Spec", None, show_spec),
        ("Configuration", None, show_config),
    )),
    ("architecture", "Architecture", (
        ("Layers", "summary", show_layers),
        ("Design lints", "summary", show_lints),
    )),
    ("training", "Training curves", (("Curves", "metrics", show_curves),)),
    ("results", "Results", (
        ("Confusion matrix", "results", show_matrix),
        ("Accuracy per class", "results", show_per_class),
        ("Most-confused pairs", "confused", show_pairs),
    )),
    ("attention", "Attention", (("Grad-CAM", "gradcam", show_gradcam),)),
    ("features", "Feature hierarchy", (
        ("First-layer filters", "filters", show_filters),
        ("Feature maps", "maps", show_maps),
        ("Activation maximisation", "actmax", show_actmax),
        ("Linear probes", "probes", show_probes),
    )),
    ("health", "Health", (
        ("Dead units", "dead", show_dead),
        ("Gradient flow", "flow", show_flow),
        ("During training", "metrics", show_history),
        ("Receptive field", "erf", show_erf),
    )),
)  # fmt: skip


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def _show(facts: Facts, key: str | None, show: Show, strict: bool) -> tuple[Blocks, str | None]:
    """(blocks, None), or ([], the note saying why the part is not shown). strict: a part whose
    facts are missing, or whose drawing fails, raises instead."""
    part = facts.parts[key] if key else Part()
    if part.note is not None:
        if strict:
            raise ReportError(part.note)  # gather(strict=True) raised first; facts built apart
        return [], part.note
    try:
        return show(part.value, facts), None
    except Exception as error:
        if strict:
            raise
        return [], f"Not shown: {why(error)}"


def sections(facts: Facts, strict: bool = False) -> tuple[list[dict], dict[str, float]]:
    """The page's sections as the template reads them, and {section: seconds} spent on each,
    gathering (the first part to use a piece of facts is charged for it) and drawing."""
    charged: set[str] = set()
    out, timings = [], {}
    for section, title, parts in SECTIONS:
        shown = []
        for part_title, key, show in parts:
            start = time.perf_counter()
            blocks, note = _show(facts, key, show, strict)
            seconds = time.perf_counter() - start
            if key and key not in charged:
                charged.add(key)
                seconds += facts.parts[key].seconds
            part_id = f"{section}-{_slug(part_title)}"
            shown.append(
                {
                    "title": part_title,
                    "id": part_id,
                    "blocks": blocks,
                    "note": note,
                    "seconds": seconds,
                }
            )
        out.append({"id": section, "title": title, "parts": shown})
        timings[section] = sum(p["seconds"] for p in shown)
    return out, timings


def page(
    facts: Facts, strict: bool = False, missing: list[tuple[str, str]] | None = None
) -> tuple[str, dict[str, float]]:
    """The report's HTML for `facts`, and {section: seconds}. missing, if given, receives
    (part title, note) for each part not shown, in page order."""
    shown, timings = sections(facts, strict)
    if missing is not None:
        missing.extend((p["title"], p["note"]) for s in shown for p in s["parts"] if p["note"])
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    html = env.get_template("report.html.j2").render(
        title=f"cnnlab report: {facts.overview.name}",
        sections=shown,
        no_run=facts.no_run,
        generated=facts.generated,
        seconds=sum(timings.values()),
    )
    return html, timings
