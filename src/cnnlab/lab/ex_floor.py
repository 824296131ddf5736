"""The floor problem (§2.2): a kernel and stride that do not tile the image drop its edge.

O = ⌊(I − K + 2P)/S⌋ + 1 floors away the last partial stride: with I = 28, K = 5, S = 3,
P = 0 the windows read pixels 0..25 and rows/columns 26-27 are never read. No window reads
them, so nothing downstream depends on them: their gradient must be exactly zero, whatever
the weights or the image. P = 2 makes (28 − 5 + 4) divisible by 3, and every pixel is read.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab import build, geometry, load_spec
from cnnlab.explain import saliency
from cnnlab.lab.experiment import (
    Context,
    Experiment,
    Verdict,
    disagreement,
    each_seed,
    figure_axes,
    seed_count,
)
from cnnlab.lab.models import conv, spec

SIZE, KERNEL, STRIDE = 28, 5, 3
PADDINGS = {"P = 0 (drops)": 0, "P = 2 (fixed)": 2}


def layers(padding: int) -> list:
    return [conv(8, KERNEL, STRIDE, padding), "relu", "flatten", {"linear": 10}]


def dropped_band(n: int) -> torch.Tensor:
    """Bool (SIZE, SIZE) mask of the last `n` rows and columns, the pixels the floor drops."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    if n:
        mask[-n:, :] = True
        mask[:, -n:] = True
    return mask


def measure(ctx: Context) -> dict:
    _, test = ctx.fashion(0, ctx.pick(64, 256))
    x = test.images.float().div(255)  # (N, 1, 28, 28); no normalization needed for gradients
    seeds = []
    maps = {}
    for i, seed in enumerate(ctx.seeds):
        ctx.progress(i, len(ctx.seeds), f"seed {seed}")
        row: dict = {"seed": seed}
        for name, padding in PADDINGS.items():
            torch.manual_seed(seed)
            model = build(load_spec(spec("floor", layers(padding))))
            grad = saliency(model, x)  # (N, 28, 28) |∂ logit / ∂ x|, predicted class
            largest = grad.amax(0)  # (28, 28): zero only where no image moved the logit
            predicted = geometry.dropped_pixels(SIZE, KERNEL, padding, STRIDE)
            band = dropped_band(predicted)
            row[name] = {
                "predicted_dropped": predicted,
                "zero_pixels": int((largest == 0).sum()),
                "zero_in_band": int((largest[band] == 0).sum()),
                "band_pixels": int(band.sum()),
                "zero_outside_band": int((largest[~band] == 0).sum()),
            }
            if i == 0:
                maps[name] = grad.mean(0).div(grad.mean(0).max()).round(decimals=4).tolist()
        seeds.append(row)
    return {"seeds": seeds, "maps": maps, "images": len(x)}


def judge(m: dict) -> Verdict:
    """Per seed: P = 0's predicted band (geometry.dropped_pixels) is exactly the set of
    zero-gradient pixels, and P = 2 predicts no drop and leaves no zero-gradient pixel.
    Holds: both on every seed. Partly: the drop confirmed on every seed, the fix not.
    Does not hold: on every seed some pixel of the band got a gradient. Else inconclusive."""
    drop, fix = PADDINGS
    rows = m["seeds"]
    band = [
        r[drop]["predicted_dropped"] > 0 and r[drop]["zero_in_band"] == r[drop]["band_pixels"]
        for r in rows
    ]
    alone = [r[drop]["zero_outside_band"] == 0 for r in rows]
    confirmed = [b and a for b, a in zip(band, alone, strict=True)]
    fixed = [r[fix]["predicted_dropped"] == 0 and r[fix]["zero_pixels"] == 0 for r in rows]
    leaked = [r[drop]["zero_in_band"] < r[drop]["band_pixels"] for r in rows]
    first = rows[0]
    numbers = {
        "last columns and rows dropped at the right and bottom (geometry, P = 0)": first[drop][
            "predicted_dropped"
        ],
        "band pixels with exactly zero gradient (P = 0)": f"{first[drop]['zero_in_band']} of "
        f"{first[drop]['band_pixels']}",
        "other zero-gradient pixels (P = 0)": first[drop]["zero_outside_band"],
        "zero-gradient pixels (P = 2)": first[fix]["zero_pixels"],
        "images": m["images"],
        "seeds confirming the drop / the fix": f"{sum(confirmed)} / {sum(fixed)} of {len(rows)}",
    }
    said = _said(rows)
    if all(confirmed) and all(fixed):
        return Verdict("holds", numbers, f"{said}: the model cannot see the edge P=0 drops.")
    if all(confirmed):
        return Verdict(
            "partly", numbers, f"{said}: the edge was dropped, but the padding did not fix it."
        )
    if all(leaked):
        return Verdict(
            "does not hold", numbers, f"{said}: pixels the floor should drop got gradient."
        )
    checks = {"P=0 dropped the edge": band, "P=2 fixed it": fixed}
    if not all(alone):  # zero gradient beyond the band too: the band is not all it shows
        checks["no pixel outside the edge had zero gradient"] = alone
    split = disagreement(checks)
    return Verdict("inconclusive", numbers, f"{said}: {split}.")


def _said(rows: list[dict]) -> str:
    """The counts of every seed in one sentence ("108" when all seeds agree, else "100-108")."""
    drop, fix = PADDINGS
    varied = []

    def over(padding: str, key: str) -> str:
        low, high = min(r[padding][key] for r in rows), max(r[padding][key] for r in rows)
        varied.append(low != high)
        return f"{low}" if low == high else f"{low}-{high}"

    out = geometry.conv_output_size(SIZE, KERNEL, 0, STRIDE)
    read = (out - 1) * STRIDE + KERNEL  # pixels 0..read-1 lie under some window
    said = (
        f"With K={KERNEL}, S={STRIDE}, P=0 on {SIZE} px, ⌊({SIZE} − {KERNEL})/{STRIDE}⌋ + 1 = "
        f"{out} windows per row read pixels 0-{read - 1}: geometry predicts the last "
        f"{over(drop, 'predicted_dropped')} columns and rows dropped (the right and bottom "
        f"edges), a band of {over(drop, 'band_pixels')} pixels; "
        f"{over(drop, 'zero_in_band')} of them had exactly zero gradient on every image "
        f"({over(drop, 'zero_outside_band')} other pixels did), and with P=2 "
        f"{over(fix, 'zero_pixels')} pixels had zero gradient"
    )
    n = len(rows)
    where = f"ranges over {seed_count(n)}" if any(varied) else f"the same on {each_seed(n)}"
    where = "over 1 seed" if n == 1 else where  # one seed's numbers are not "the same" as any
    return f"{said} ({where})"


def figure(m: dict):
    fig, axes = figure_axes(2, height=3.4, width=7.0)
    for ax, (name, grad) in zip(axes, m["maps"].items(), strict=True):
        g = np.asarray(grad, dtype=np.float32)  # not a tensor: asarray(copy=) warns
        shown = ax.imshow(g, cmap="magma", vmin=0, vmax=1)
        ax.contour((g == 0).astype(np.float32), levels=[0.5], colors="cyan", linewidths=1.0)
        ax.set_title(f"K={KERNEL}, S={STRIDE}, {name}\nmean |gradient| (cyan: exactly 0)")
        ax.axis("off")
    fig.colorbar(shown, ax=axes, fraction=0.03)
    return fig


EXPERIMENT = Experiment(
    name="floor",
    title="The floor problem",
    section="§2.2",
    claim="When (I − K + 2P)/S is not an integer the output size is floored and the last "
    "right/bottom pixels are ignored; a padding that makes it an integer reads them again.",
    setup=f"A conv layer (8 filters, K={KERNEL}, S={STRIDE}) + ReLU + linear on 28×28 "
    "Fashion-MNIST test images, at P=0 and P=2; vanilla saliency (cnnlab.explain.saliency) "
    "for the predicted class; a pixel counts as ignored when its gradient is exactly 0 on "
    "every image. Seeds vary the weights.",
    rule="Holds if, on every seed, the pixels with exactly zero gradient at P=0 are exactly the "
    "edge band cnnlab.geometry.dropped_pixels predicts, and at P=2 geometry predicts no drop "
    "and no pixel has zero gradient; partly if only the drop is confirmed on every seed; does "
    "not hold if on every seed a pixel of the band got a gradient; otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Mean |∂ logit / ∂ pixel| over the test images at P=0 and at P=2 (first seed). Cyan "
    "outlines the pixels whose gradient is exactly 0 on every image: at P=0, the right and bottom "
    "band the floor drops.",
)
