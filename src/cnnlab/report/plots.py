"""The report's figures: plain numbers in, a `data:image/png;base64,...` URI out.

One style for all (`_figure`): bare `Figure`s rendered by Agg (no pyplot, so the user's backend
and open figures are left alone), 9 pt type, light grid, no top/right spines, the tab10
palette; every axis is labelled with its unit. Figures are sized in inches at 100 dpi for a
column about 900 px wide, so none needs sideways scrolling.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from contextlib import contextmanager

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from PIL import Image

WIDTH = 9.0  # inches at DPI: the report's column width
DPI = 100
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=matplotlib.colormaps["tab10"].colors),
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
LABEL_CHARS = 30  # a layer's tick label at most: a transformers name runs to 60 and more
GOOD, BAD = "#1a7f37", "#cf222e"  # correct / misclassified, as in the HTML
TILE_TITLE_PT = 9  # Grad-CAM tile titles: 9 pt at DPI, shown at full width (about 9.4 CSS pt)


@contextmanager
def _figure(nrows: int = 1, ncols: int = 1, height: float = 3.0, width: float = WIDTH, **kw):
    # A bare Figure (no pyplot): renders with Agg, leaves the user's backend and state alone.
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height))
        yield fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def to_uri(fig) -> str:
    """A matplotlib figure as an inline PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_uri(image: np.ndarray, scale: int = 1) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a PNG data URI, enlarged `scale` times (nearest)."""
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 or [0, 1] float -> (H, W) or (H, W, 3) for imshow/PIL."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0)


# --- training -------------------------------------------------------------------------------


def curves(rows: Sequence[dict], tta: str = "flip") -> str:
    """Loss, accuracy and learning rate per epoch from metrics.jsonl rows; `tta`: the views
    the test accuracy with TTA averaged (`train.evaluate.tta_label`; "": none, not drawn)."""
    epochs = [r["epoch"] for r in rows]

    def series(key, scale=1.0):
        return [r[key] * scale if r.get(key) is not None else math.nan for r in rows]

    with _figure(1, 3, height=2.8) as (fig, ax):
        loss, acc, lr = ax[0]
        loss.plot(epochs, series("train_loss"), marker="o", ms=3, label="train")
        if any("val_loss" in r for r in rows):
            loss.plot(epochs, series("val_loss"), marker="o", ms=3, label="validation")
        loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy (nats)")
        acc.plot(epochs, series("train_acc", 100), marker="o", ms=3, label="train")
        if any("val_acc" in r for r in rows):
            acc.plot(epochs, series("val_acc", 100), marker="o", ms=3, label="validation")
        last = rows[-1]
        marks = (("test_acc", "test", "*"), ("test_acc_tta", f"test, TTA ({tta})", "P"))
        for key, label, mark in marks if tta else marks[:1]:
            if last.get(key) is not None:
                acc.plot([epochs[-1]], [last[key] * 100], mark, ms=9, label=label)
        acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
        lr.plot(epochs, series("lr"), marker="o", ms=3, color="C4")
        lr.set(title="Learning rate (end of epoch)", xlabel="epoch", ylabel="learning rate")
        for a in (loss, acc):
            a.legend(frameon=False)
        for a in (loss, acc, lr):
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        return to_uri(fig)


def diagnose_history(rows: Sequence[dict]) -> str | None:
    """Dead share per ReLU site over the epochs where the trainer logged `diagnose`."""
    logged = [r for r in rows if isinstance(r.get("diagnose"), dict)]
    if not logged:
        return None
    sites = list(dict.fromkeys(k for r in logged for k in r["diagnose"].get("dead_share", {})))
    with _figure(1, 2, height=2.6) as (fig, ax):
        dead, ratio = ax[0]
        epochs = [r["epoch"] for r in logged]
        for site in sites:
            shares = [r["diagnose"]["dead_share"].get(site, math.nan) * 100 for r in logged]
            dead.plot(epochs, shares, marker="o", ms=3, label=site)
        dead.set(title="Dead units during training", xlabel="epoch", ylabel="dead channels (%)")
        dead.set_ylim(bottom=0, top=max(5.0, dead.get_ylim()[1]))
        if len(sites) <= 8:
            dead.legend(frameon=False, fontsize=7)
        ratios = [r["diagnose"].get("grad_ratio") or math.nan for r in logged]
        ratio.semilogy(epochs, ratios, marker="o", ms=3, color="C3")
        ratio.axhline(1e-3, color="grey", ls="--", lw=1, label="vanishing below")
        ratio.set(title="Gradient ratio first / last layer", xlabel="epoch", ylabel="ratio (L2)")
        ratio.legend(frameon=False)
        for a in (dead, ratio):
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        return to_uri(fig)


# --- results --------------------------------------------------------------------------------


def confusion(matrix: np.ndarray, classes: Sequence[str]) -> str:
    """Row-normalised confusion matrix (% of each true class), counts written in the cells."""
    k = len(classes)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) * 100
    side = min(WIDTH, 2.5 + 0.45 * k)
    with _figure(height=side * 0.85, width=side) as (fig, ax):
        ax = ax[0, 0]
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        ax.grid(False)
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix")
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    colour = "white" if share[i, j] > 60 else "black"
                    ax.text(
                        j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour
                    )
        fig.colorbar(im, ax=ax, label="share of true class (%)", shrink=0.8)
        fig.tight_layout()
        return to_uri(fig)


def hbars(
    labels: Sequence[str],
    values: Sequence[float],
    xlabel: str,
    title: str,
    reference: float | None = None,
    log: bool = False,
    colours: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, one per label, top to bottom in the given order."""
    n = len(labels)
    with _figure(height=0.9 + 0.24 * n, width=WIDTH * 0.75) as (fig, ax):
        ax = ax[0, 0]
        y = np.arange(n)
        ax.barh(y, values, color=colours or "C0")
        ax.set_yticks(y, [layer_label(n) for n in labels])
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
            # labelled ticks at 1, 2, 5 x 10^k: readable whether the range spans 2 or 12 decades
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if reference is not None:
            ax.axvline(reference, color="grey", ls="--", lw=1)
        ax.set(xlabel=xlabel, title=title)
        fig.tight_layout()
        return to_uri(fig)


def image_grid(
    tiles: Sequence[np.ndarray],
    titles: Sequence[str],
    ncols: int,
    title: str | None = None,
    colours: Sequence[str] | None = None,
    cmap: str = "gray",
    tile_inches: float = 1.1,
) -> str:
    """Images (H, W) or (H, W, 3) in a grid, each with a small title."""
    n = len(tiles)
    nrows = max(1, math.ceil(n / ncols))
    width = min(WIDTH, ncols * tile_inches)
    height = nrows * (tile_inches + 0.35) + (0.3 if title else 0)
    with _figure(nrows, ncols, height=height, width=width) as (fig, axes):
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(tiles[i], cmap=cmap, interpolation="nearest")
                colour = colours[i] if colours else "black"
                ax.set_title(titles[i], fontsize=7, color=colour)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return to_uri(fig)


def gradcam_overlays(
    images: Sequence[np.ndarray], heats: Sequence[np.ndarray], titles, colours, title: str
) -> str:
    """Grad-CAM heat (H, W in [0, 1]) over each image, jet at alpha 0.45: five tiles a row
    across the whole column, so the two-line titles are TILE_TITLE_PT at the size shown."""
    n = len(images)
    ncols = 5
    nrows = max(1, math.ceil(n / ncols))
    tile = WIDTH / ncols - 0.1  # inches, less a little for tight_layout's padding
    with _figure(nrows, ncols, height=nrows * (tile + 0.6) + 0.35, width=WIDTH) as (fig, axes):
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(images[i], cmap="gray", interpolation="nearest")
                ax.imshow(heats[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.set_title(titles[i], fontsize=TILE_TITLE_PT, color=colours[i])
        fig.suptitle(title)
        fig.tight_layout()
        return to_uri(fig)


def feature_maps(layers: Sequence[tuple[str, np.ndarray]], channels: int = 8) -> str:
    """One row per layer: its first `channels` maps (C, H, W) on one image, each min-max scaled."""
    nrows = len(layers)
    with _figure(nrows, channels, height=nrows * 1.05 + 0.2, width=WIDTH * 0.85) as (fig, axes):
        for row, (name, maps) in enumerate(layers):
            for col in range(channels):
                ax = axes[row, col]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if col < len(maps):
                    ax.imshow(maps[col], cmap="viridis", interpolation="nearest")
                else:
                    ax.axis("off")
            axes[row, 0].set_ylabel(
                f"{row_label(name)}\n{maps.shape[1]}×{maps.shape[2]}", fontsize=7
            )
        fig.tight_layout()
        return to_uri(fig)


ROW_LABEL_CHARS = 16  # a feature-map row's label, a line: 7-pt characters within its height


def row_label(label: str) -> str:
    """A feature-map row's label ("layer2.0.shortcut.1 BatchNorm2d"), the layer's name and
    its kind each on a line of at most ROW_LABEL_CHARS (`layer_label`): on one line it ran
    up into the rows above and below."""
    name, _, kind = label.rpartition(" ")
    parts = [name, kind] if name else [kind]
    return "\n".join(layer_label(part, ROW_LABEL_CHARS) for part in parts)


def layer_label(name: str, chars: int = LABEL_CHARS) -> str:
    """A layer's name for an axis: as it is, or its last `chars` − 1 characters after "…"
    (the end of a dotted name says which layer; its start, which wrapper): a tick label of a
    deep model's name filled a figure's height, and tight_layout gave up."""
    return name if len(name) <= chars else "…" + name[len(name) - chars + 1 :]


def probe(layers: Sequence[str], accuracy: Sequence[float], baseline: float | None) -> str:
    """Linear-probe test accuracy against depth, the raw-pixel probe as a dashed line."""
    with _figure(height=3.0, width=WIDTH * 0.8) as (fig, ax):
        ax = ax[0, 0]
        x = np.arange(len(layers))
        ax.plot(x, [a * 100 for a in accuracy], marker="o", label="probe on layer features")
        if baseline is not None:
            ax.axhline(baseline * 100, color="grey", ls="--", label="raw pixels (input)")
        ax.set_xticks(x, [layer_label(n) for n in layers], rotation=45, ha="right")
        ax.set(xlabel="layer (input → output)", ylabel="probe test accuracy (%)")
        low, high = ax.get_ylim()  # autoscale's margin ran the axis past 100 % (and below 0)
        ax.set_ylim(max(low, 0.0), min(high, 100.0))
        ax.set_title("Linear probes: how linearly separable the classes are at each depth")
        ax.legend(frameon=False)
        fig.tight_layout()
        return to_uri(fig)


def receptive_fields(
    layers: Sequence[str], theoretical: Sequence[float], effective: Sequence[float]
) -> str:
    """Theoretical vs effective receptive field side (pixels) per layer, grouped bars."""
    with _figure(height=3.0, width=WIDTH * 0.8) as (fig, ax):
        ax = ax[0, 0]
        x = np.arange(len(layers))
        ax.bar(x - 0.2, theoretical, 0.4, label="theoretical (formula)")
        ax.bar(x + 0.2, effective, 0.4, label="effective (95% of gradient mass)")
        ax.set_xticks(x, [layer_label(n) for n in layers], rotation=45, ha="right")
        ax.set(xlabel="layer", ylabel="receptive field side (pixels)")
        ax.set_title("Receptive field per layer")
        ax.legend(frameon=False)
        fig.tight_layout()
        return to_uri(fig)


def grouped_hbars(labels: Sequence[str], series: dict[str, Sequence[float]], xlabel: str) -> str:
    """Several values per label as horizontal grouped bars (e.g. dead share and sparsity)."""
    n, k = len(labels), len(series)
    with _figure(height=1.0 + 0.3 * n * max(1, k / 1.5), width=WIDTH * 0.75) as (fig, ax):
        ax = ax[0, 0]
        y = np.arange(n)
        h = 0.8 / k
        for i, (name, values) in enumerate(series.items()):
            ax.barh(y - 0.4 + h * (i + 0.5), values, h, label=name)
        ax.set_yticks(y, [layer_label(n) for n in labels])
        ax.invert_yaxis()
        ax.set(xlabel=xlabel)
        # the legend takes the title's place above the axes: no bar is ever hidden under it
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=k, frameon=False)
        fig.tight_layout()
        return to_uri(fig)
