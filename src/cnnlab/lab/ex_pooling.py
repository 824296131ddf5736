"""Pooling (§3.1, §3.3): max against average against ConcatPool2d against strided convolution.

The notes: max pooling keeps the strongest signal and so resists small shifts; average
pooling is a low-pass filter; ConcatPool2d keeps both; a strided convolution is a learned
downsampling. Measured: the same net with each downsampling, trained alike: accuracy, the
share of predictions unchanged by a 1- and 2-px shift, and, on the same first-block feature
maps, how much of their power sits at high spatial frequencies after each way of halving them.

The control for "low-pass" is plain subsampling (every second pixel, `maps[..., ::2, ::2]`):
it filters nothing, so the input's fine detail folds (aliases) into the halved map's high
band. A low-pass filter before the same subsampling removes part of that detail, so the
claim predicts a smaller high-frequency share after average pooling than after subsampling
of the same maps. Max pooling is no fixed filter (a nonlinear "strongest signal" pick); its
share is reported beside the two for context, not judged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.inspect import Capture, preserved
from cnnlab.lab.experiment import (
    ERRORS,
    Context,
    Effect,
    Experiment,
    Verdict,
    disagreement,
    figure_axes,
    mean_spread,
    seed_count,
    seed_points,
)
from cnnlab.lab.models import conv_stack, head, spec
from cnnlab.lab.transforms import shift_each

DOWNS = {"max": "maxpool", "average": "avgpool", "concat": "concatpool", "stride 2": "stride"}
STABLER = 2.0  # points: max pooling's 2-px agreement must beat the strided conv's by this
SHIFTS = (1, 2)
# The cut: how much smaller average pooling's high-frequency share is than subsampling's,
# relative. Where averaging filters nothing it is 0: white noise (a flat spectrum) halved
# either way is white noise, the same share (147 of a 14×14 map's 195 bins). "Low-pass" reads
# the cuts as an `Effect` (experiment.py, shared with heads): above LEAST_CUT on every seed.
# LEAST_CUT, a twentieth of the high band: the notes say
# "low-pass", not how strong, but a filter that leaves 95 % of the band is one in name only;
# and it is far above what measuring gives a halving that filters nothing: on rectified white
# noise of the measured size (64×16 maps of 28×28) the cut is 0 ± 0.25 % (sd over 100 draws,
# at most 0.7 %).
LEAST_CUT = 0.05
# Halving a (N, C, H, W) map: the control (no filter), the claim's filter, and max for context.
HALVINGS = {
    "subsample": lambda maps: maps[..., ::2, ::2],
    "average": lambda maps: F.avg_pool2d(maps, 2),
    "max": lambda maps: F.max_pool2d(maps, 2),
}


def high_share(maps: torch.Tensor) -> torch.Tensor:
    """Share of each map's power (mean removed) at spatial frequencies above a quarter of the
    sampling rate (|f| > 0.25 cycles/px on either axis): `(N, C, H, W)` -> `(N·C,)`."""
    x = maps.flatten(0, 1).float()  # (N·C, H, W)
    x = x - x.mean((1, 2), keepdim=True)
    power = torch.fft.fft2(x).abs() ** 2  # (N·C, H, W)
    fy = torch.fft.fftfreq(x.shape[1]).abs()
    fx = torch.fft.fftfreq(x.shape[2]).abs()
    high = (fy[:, None] > 0.25) | (fx[None, :] > 0.25)  # (H, W)
    return power[:, high].sum(1) / power.sum((1, 2)).clamp_min(1e-12)


def radial(maps: torch.Tensor) -> list[float]:
    """Mean power per integer radial frequency bin of the centred spectrum, normalised."""
    x = maps.flatten(0, 1).float()
    x = x - x.mean((1, 2), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(x).abs() ** 2, dim=(1, 2)).mean(0)  # (H, W)
    h, w = power.shape
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    r = (yy**2 + xx**2).float().sqrt().round().long()
    totals = torch.zeros(int(r.max()) + 1).index_add_(0, r.flatten(), power.flatten())
    counts = torch.bincount(r.flatten()).float()
    profile = totals / counts
    return (profile / profile.sum()).tolist()[: h // 2 + 1]


def spectra(trained, images: torch.Tensor) -> dict:
    """First block's ReLU maps (Sequential index 2) of `images`, halved each way of HALVINGS."""
    with preserved(trained.model), Capture(trained.model, ["2"]) as cap, torch.no_grad():
        trained.model(trained.inputs(images))
        maps = cap.tensor("2")  # (N, C, 28, 28)
    halved = {k: halve(maps) for k, halve in HALVINGS.items()}  # each (N, C, 14, 14)
    return {
        k: {"high": float(high_share(v).mean()), "radial": radial(v)} for k, v in halved.items()
    }


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(3, 6)
    seeds, steps = [], len(DOWNS) * len(ctx.seeds)
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        for j, (name, down) in enumerate(DOWNS.items()):
            ctx.progress(i * len(DOWNS) + j, steps, f"seed {seed}: {name}")
            layers = conv_stack((16, 32, 32), down=down) + head("gap")
            trained = ctx.train(spec(name, layers), (train, test), seed, epochs=epochs)
            base = trained.logits(test.images).argmax(1)
            agree = {}
            for px in SHIFTS:
                moved = trained.logits(shift_each(test.images, px, seed)).argmax(1)
                agree[str(px)] = round(100 * float((moved == base).float().mean()), 2)
            row[name] = {
                "test": round(100 * trained.accuracy(test.images, test.labels), 2),
                "agreement": agree,
            }
            if name == "max":
                row["spectra"] = spectra(trained, test.images[:64])
        seeds.append(row)
    return {"seeds": seeds, "epochs": epochs, "train_images": len(train)}


def judge(m: dict) -> Verdict:
    """Per seed: *max resists shifts*: its 2-px agreement ≥ the strided conv's + STABLER;
    *average is low-pass*: the cut (average-pooled maps' high-frequency share below that of the
    same maps subsampled without a filter, relative), an `Effect` against LEAST_CUT: shown
    (above it on every seed), contradicted or unsettled. Holds: max resists on every seed and
    low-pass is shown. Partly: one of those. Does not hold: max resists on no seed and
    low-pass is contradicted. Otherwise inconclusive. Max pooling's share is reported, not
    judged."""
    rows = m["seeds"]
    stable = [r["max"]["agreement"]["2"] >= r["stride 2"]["agreement"]["2"] + STABLER for r in rows]
    cuts = Effect(tuple(_cut(r["spectra"]) for r in rows), LEAST_CUT)
    low = cuts.reading
    numbers = {
        f"{n}: test %, agreement at 1 / 2 px": "{:.1f}, {:.1f} / {:.1f}".format(
            mean_spread([r[n]["test"] for r in rows])[0],
            *(mean_spread([r[n]["agreement"][str(px)] for r in rows])[0] for px in SHIFTS),
        )
        for n in DOWNS
    }
    high = {k: mean_spread([r["spectra"][k]["high"] for r in rows]) for k in HALVINGS}
    numbers["high-frequency power share after subsampling / average / max pooling"] = " / ".join(
        f"{high[k][0]:.1%}" for k in HALVINGS
    )
    cut = mean_spread(cuts.differences)
    numbers["seeds"] = len(rows)
    agree = {n: mean_spread([r[n]["agreement"]["2"] for r in rows]) for n in ("max", "stride 2")}
    n = len(rows)
    said = (
        f"Shifted by 2 px, max pooling kept {agree['max'][0]:.1f} ± {agree['max'][1]:.1f} % of "
        f"its predictions and the strided conv {agree['stride 2'][0]:.1f} ± "
        f"{agree['stride 2'][1]:.1f} % (at least {STABLER:g} points more on {sum(stable)} of "
        f"{seed_count(n)}); the high-frequency share of the halved maps was "
        f"{high['subsample'][0]:.1%} ± {high['subsample'][1]:.1%} subsampled, "
        f"{high['average'][0]:.1%} ± {high['average'][1]:.1%} after average pooling, "
        f"{cut[0]:.0%} ± {cut[1]:.0%} less ({cuts.said('{:.1%}')}; max pooling "
        f"{high['max'][0]:.1%}; mean ± sd over {seed_count(n)})"
    )
    steadier = [r["average"]["agreement"]["2"] > r["max"]["agreement"]["2"] for r in rows]
    beside = {k: mean_spread([r[k]["agreement"]["2"] for r in rows]) for k in ("average", "concat")}
    said += (  # trained and measured alike, so shown; the claim says they are not judged
        f"; at 2 px average pooling kept {beside['average'][0]:.1f} ± {beside['average'][1]:.1f}"
        f" % and ConcatPool2d {beside['concat'][0]:.1f} ± {beside['concat'][1]:.1f} % (shown, "
        f"not judged; average pooling above max pooling on {sum(steadier)} of {seed_count(n)})"
    )
    if all(stable) and low == "shown":
        return Verdict(
            "holds", numbers, f"{said}: max pooling resists small shifts better than a strided "
            "conv, average pooling is low-pass.",
        )  # fmt: skip
    if all(stable) or low == "shown":
        part = "average pooling is low-pass" if low == "shown" else "max pooling resists shifts"
        return Verdict("partly", numbers, f"{said}: only '{part}' held on every seed.")
    if not any(stable) and low == "contradicted":
        return Verdict("does not hold", numbers, f"{said}: neither pooling claim held.")
    return Verdict("inconclusive", numbers, f"{said}: {_undecided(stable, cuts)}.")


def _undecided(stable: list[bool], cuts: Effect) -> str:
    """Which checks an inconclusive verdict rests on: the seeds' split, and a low-pass cut that
    no seed cleared but whose mean is too uneven to rule LEAST_CUT out (unsettled, not failed:
    "failed on every seed" for both checks would read as 'does not hold')."""
    checks = {"max resists shifts": stable}
    if cuts.above:  # some seed cleared LEAST_CUT: the seeds split on it
        checks["average is low-pass"] = [d > LEAST_CUT for d in cuts.differences]
    split = disagreement(checks)
    if cuts.above:
        return split
    return (
        f"{split}; 'average is low-pass' fell short of {LEAST_CUT:.0%} on every seed, too "
        "unevenly for the mean to rule it out"
    )


def _cut(spectra: dict) -> float:
    """How much smaller average pooling's high-frequency share is than subsampling's, as a
    share of subsampling's (0.2: a fifth less; negative: more)."""
    sub = spectra["subsample"]["high"]
    return (sub - spectra["average"]["high"]) / sub if sub > 0 else 0.0


def figure(m: dict):
    fig, (acc, spec_ax) = figure_axes(2, height=3.2)
    names = list(DOWNS)
    for k, px in enumerate(SHIFTS):
        values = [mean_spread([r[n]["agreement"][str(px)] for r in m["seeds"]])[0] for n in names]
        acc.bar([x + 0.27 * k for x in range(len(names))], values, width=0.27, label=f"{px} px")
        for x, n in enumerate(names):
            seed_points(acc, x + 0.27 * k, [r[n]["agreement"][str(px)] for r in m["seeds"]])
    tests = [mean_spread([r[n]["test"] for r in m["seeds"]])[0] for n in names]
    acc.bar([x + 0.54 for x in range(len(names))], tests, width=0.27, label="test accuracy")
    for x, n in enumerate(names):
        seed_points(acc, x + 0.54, [r[n]["test"] for r in m["seeds"]])
    acc.set_xticks([x + 0.27 for x in range(len(names))], names)
    acc.set_ylabel("% (agreement: same prediction as unshifted)")
    acc.set_ylim(0, 100)
    acc.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))  # above
    first = m["seeds"][0]["spectra"]
    looks = {"subsample": ("k", "s-", "subsampled (control)"), "average": ("C1", "o-", "average"),
             "max": ("C0", "o:", "max (context)")}  # fmt: skip
    for name, (color, style, label) in looks.items():
        profile = first[name]["radial"][1:]  # bin 0 is the mean, removed before the FFT
        spec_ax.semilogy(range(1, len(profile) + 1), profile, style, ms=3, color=color, label=label)
    spec_ax.set_xlabel("radial frequency (cycles per 14 px)")
    # radial() is the mean power per frequency of each ring, normalised: flat for white noise,
    # whose outer rings, holding more frequencies, hold more of the power
    spec_ax.set_ylabel("power per frequency, normalised\n(ring mean, first-block maps)")
    spec_ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="pooling",
    title="Pooling",
    section="§3.1, §3.3",
    claim="Max pooling keeps the strongest activation and so resists small shifts; average "
    "pooling is a low-pass filter; ConcatPool2d keeps both signals; a strided convolution is a "
    "learned alternative. (ConcatPool2d and average pooling are trained alike and their "
    "agreement under shifts is reported beside the verdict, not judged.)",
    setup="Fashion-MNIST subsets; three 3×3 conv blocks (16, 32, 32, batch norm) downsampling "
    "by 2×2 max pooling, average pooling, ConcatPool2d, or a stride-2 convolution, GAP head, "
    "trained alike without shift augmentation. Agreement of predictions on test images moved "
    "1 and 2 px (random direction) with the unshifted ones; spectra of the max-pool net's "
    "first-block maps (64 test images) halved three ways: subsampled (every second pixel, no "
    "filter: the control), average-pooled, and max-pooled (for context).",
    rule=f"Holds if, on every seed, max pooling's agreement at 2 px beats the strided conv's by "
    f"{STABLER} points and average pooling leaves a smaller high-frequency power share (above "
    "0.25 cycles/px) than plain subsampling of the same maps, the relative cut exceeding "
    f"{LEAST_CUT:.0%} on every seed (a filter that removes nothing gives 0, e.g. on white "
    "noise); partly if only one holds; does not hold if max pooling's holds on no "
    f"seed and no seed's cut exceeds {LEAST_CUT:.0%}, the mean short of it by at least "
    f"{ERRORS:g} standard errors; otherwise inconclusive. Max pooling's share is shown, not "
    "judged.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Left: the share of predictions unchanged by a 1- and a 2-px shift, and the test "
    "accuracy, per downsampling (bars: mean; dots: seeds). Right: the power spectrum of the first "
    "block's maps halved three ways (first seed): average pooling below plain subsampling at high "
    "frequencies is its low-pass filter.",
    revised="after a first full run had been seen: the control is plain subsampling, not max "
    "pooling, and the low-pass margin comes from the seeds' spread. Revised again after a "
    f"later full run: each seed's cut must exceed {LEAST_CUT:.0%} (the least worth reporting) "
    "not each seed 2 sds of the cuts, which failed a large uneven cut and passed a tiny "
    "steady one (the full lab's verdict stayed 'holds')",
)
