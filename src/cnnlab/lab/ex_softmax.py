"""Softmax (§5.5): the outputs form a distribution, but are they the model's probabilities?

softmax(z)_i = e^{z_i} / Σ_j e^{z_j} is in (0, 1) and sums to 1 by construction. Whether a
0.9 means "right 9 times in 10" is calibration, measured by the expected calibration error
ECE = Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)| over 15 equal-width confidence bins
(Guo et al. 2017), with and without label smoothing, and after temperature scaling
(softmax(z / T), T fitted on the validation split only, never the test set).

ECE on a finite test set is biased upwards: a perfectly calibrated model still shows a gap in
each bin, about sqrt(2/π)·sqrt(c(1 − c)/n_b) for n_b predictions of confidence c, so on the
quick lab's 1,000 test images a calibrated net with this one's confidences scores about 0.03,
the rule's own threshold. That floor is measured (labels drawn from the model's own
confidences, `calibrated_ece`): an ECE above the threshold calls a model miscalibrated only
where it also lies above what a calibrated model shows on as many images (its 95th percentile).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.data import train_val_split
from cnnlab.lab.experiment import Context, Experiment, Verdict, figure_axes, mean_spread, seed_count
from cnnlab.lab.models import conv_stack, head, spec
from cnnlab.train import TrainConfig

BINS = 15
CALIBRATED = 0.03  # ECE at most this counts as calibrated
SMOOTHING = {"plain cross-entropy": 0.0, "label smoothing 0.1": 0.1}
TEMPERATURES = torch.logspace(-1, 1, 161)  # 0.1 .. 10, the grid T is chosen from
DRAWS = 400  # calibrated test sets drawn per model for the ECE floor: its 95th percentile
# moves by about 0.001 between draws of 400 (1,000 images)


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """Expected calibration error of `probs` (N, K) against `labels` (N,): the bin-size-weighted
    mean |accuracy − mean confidence| over `bins` equal-width bins of the top probability."""
    confidence, predicted = probs.max(1)
    return float(_ece(confidence, (predicted == labels)[None], bins)[0])


def _ece(confidence: torch.Tensor, correct: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """ECE of top probabilities `confidence` (N,) for each row of `correct` (D, N) bool: (D,)."""
    index = (confidence * bins).long().clamp(max=bins - 1)  # (N,) bin of each prediction
    total = torch.zeros(len(correct), dtype=torch.float64)
    for b in range(bins):
        inside = index == b
        if inside.any():
            gap = correct[:, inside].double().mean(1) - confidence[inside].double().mean()
            total += inside.double().mean() * gap.abs()
    return total


def calibrated_ece(probs: torch.Tensor, seed: int, draws: int = DRAWS) -> tuple[float, float]:
    """(mean, 95th percentile) ECE of a perfectly calibrated model with the same top
    probabilities on as many images: each prediction drawn right with probability its
    confidence, `draws` times (seeded). What sampling alone adds to the ECE of `probs` (N, K)."""
    confidence = probs.max(1).values  # (N,)
    gen = torch.Generator().manual_seed(seed)
    correct = torch.rand(draws, len(confidence), generator=gen) < confidence  # (D, N)
    found = _ece(confidence, correct)
    return float(found.mean()), float(found.quantile(0.95))


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list:
    """[(mean confidence, accuracy, count)] per non-empty bin, for the diagram."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    index = (confidence * bins).long().clamp(max=bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            out.append(
                [float(confidence[inside].mean()), float(correct[inside].mean()), int(inside.sum())]
            )
    return out


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T of TEMPERATURES minimising the mean NLL of softmax(logits / T) (validation set)."""
    losses = [float(F.cross_entropy(logits / t, labels)) for t in TEMPERATURES]
    return float(TEMPERATURES[min(range(len(losses)), key=losses.__getitem__)])


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(3, 6)
    seeds = []
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        val = train_val_split(train, TrainConfig().val_fraction, seed)[1]  # the trainer's split
        for j, (name, smoothing) in enumerate(SMOOTHING.items()):
            ctx.progress(2 * i + j, 2 * len(ctx.seeds), f"seed {seed}: {name}")
            net = spec("softmax", conv_stack((16, 32, 32)) + head("gap"))
            trained = ctx.train(net, (train, test), seed, epochs=epochs, label_smoothing=smoothing)
            t = fit_temperature(trained.logits(val.images), val.labels)
            logits = trained.logits(test.images)
            probs, scaled = logits.softmax(1), (logits / t).softmax(1)
            row[name] = {
                "test": round(100 * float((logits.argmax(1) == test.labels).float().mean()), 2),
                "sum_error": float((probs.double().sum(1) - 1).abs().max()),
                "in_range": bool(((probs >= 0) & (probs <= 1)).all()),
                "ece": round(ece(probs, test.labels), 5),
                "ece_calibrated": [round(v, 5) for v in calibrated_ece(probs, seed)],
                "temperature": round(t, 4),
                "ece_scaled": round(ece(scaled, test.labels), 5),
                "ece_scaled_calibrated": [round(v, 5) for v in calibrated_ece(scaled, seed)],
                "reliability": reliability(probs, test.labels),
                "reliability_scaled": reliability(scaled, test.labels),
            }
        seeds.append(row)
    return {"seeds": seeds, "epochs": epochs, "bins": BINS}


def judge(m: dict) -> Verdict:
    """Distribution: every output in [0, 1], sums within 1e-6 of 1. Per seed, plain
    cross-entropy: *calibrated* if ECE ≤ CALIBRATED; *fixable* if ECE after temperature
    scaling ≤ CALIBRATED; *off* (before or after T) if that ECE is above CALIBRATED and above
    the 95th percentile of a calibrated model's on as many images (`calibrated_ece`; 0 where
    not measured). Holds: distribution and calibrated on every seed. Partly: distribution,
    and fixable on every seed, or off before and after T on every seed. Does not hold: not a
    distribution. Otherwise (seeds disagree, or an ECE a calibrated model could show)
    inconclusive."""
    plain, smooth = SMOOTHING
    rows = m["seeds"]
    distribution = all(
        r[n]["in_range"] and r[n]["sum_error"] <= 1e-6 for r in rows for n in SMOOTHING
    )
    calibrated = [r[plain]["ece"] <= CALIBRATED for r in rows]
    fixable = [r[plain]["ece_scaled"] <= CALIBRATED for r in rows]
    off = [_off(r[plain], "ece") and _off(r[plain], "ece_scaled") for r in rows]
    numbers = _numbers(rows)
    (e_plain, e_sd), (e_scaled, s_sd) = (
        mean_spread([r[plain][k] for r in rows]) for k in ("ece", "ece_scaled")
    )
    n = len(rows)
    said = (
        f"Outputs {'' if distribution else 'not all '}in [0, 1] and summing to 1 (largest "
        f"|Σ − 1| {numbers['max |Σ softmax − 1|']:.0e}); with "
        f"plain cross-entropy ECE {e_plain:.3f} ± {e_sd:.3f} ({CALIBRATED:g} or less on "
        f"{sum(calibrated)} of {seed_count(n)}), {e_scaled:.3f} ± {s_sd:.3f} after a temperature "
        f"fitted on validation ({CALIBRATED:g} or less on {sum(fixable)}; mean ± sd over "
        f"{seed_count(n)})"
    )
    if not distribution:
        return Verdict("does not hold", numbers, f"{said}: not a distribution.")
    if all(calibrated):
        return Verdict("holds", numbers, f"{said}: a distribution, and calibrated.")
    if all(fixable):
        return Verdict(
            "partly", numbers, f"{said}: a distribution, but calibrated only after temperature "
            "scaling.",
        )  # fmt: skip
    if all(off):
        return Verdict(
            "partly", numbers, f"{said}: a distribution, but miscalibrated, even after "
            "temperature scaling.",
        )  # fmt: skip
    if not any(calibrated) and not any(fixable):
        return Verdict("inconclusive", numbers, f"{said}: {_undecided(rows)}.")
    return Verdict("inconclusive", numbers, f"{said}: the seeds disagree on calibration.")


def _undecided(rows: list[dict]) -> str:
    """Why ECEs above CALIBRATED on every seed, not off on every seed, call nothing: on some
    seeds the plain ECE is one a calibrated model shows on as many images; on others it lies
    beyond that, and only the ECE after the temperature is within it; on others again it lies
    beyond that before and after (then the seeds disagree, not the images are too few)."""
    plain, n = next(iter(SMOOTHING)), len(rows)
    before = [r for r in rows if not _off(r[plain], "ece")]
    after = [r for r in rows if _off(r[plain], "ece") and not _off(r[plain], "ece_scaled")]
    beyond = len(rows) - len(before) - len(after)  # off before and after T
    said = []
    if before:
        said.append(
            f"on {len(before)} of {seed_count(n)} within what a perfectly calibrated model with "
            "these confidences shows on as many test images (95th percentile "
            f"{max(_floor(r[plain], 'ece')[1] for r in before):.3f})"
        )
    if after:
        said.append(
            f"on {len(after)} of {seed_count(n)} beyond that before the temperature and within "
            "it after (95th percentile "
            f"{max(_floor(r[plain], 'ece_scaled')[1] for r in after):.3f})"
        )
    if beyond:
        said.append(f"on {beyond} of {seed_count(n)} beyond it before and after")
        return f"above {CALIBRATED:g}, but {'; '.join(said)}: the seeds disagree"
    when = " after the temperature" if after and not before else ""
    return (
        f"above {CALIBRATED:g}, but {'; '.join(said)}: too few images to call it "
        f"miscalibrated{when}"
    )


def _numbers(rows: list[dict]) -> dict:
    """The verdict's table: the largest sum error, ECE before and after T, the ECE floor."""
    numbers = {"max |Σ softmax − 1|": max(r[n]["sum_error"] for r in rows for n in SMOOTHING)}
    for n in SMOOTHING:
        e, es, t = (
            mean_spread([r[n][k] for r in rows]) for k in ("ece", "ece_scaled", "temperature")
        )
        numbers[f"{n}: ECE, after T (T)"] = f"{e[0]:.3f} ± {e[1]:.3f}, {es[0]:.3f} ({t[0]:.2f})"
    plain = next(iter(SMOOTHING))
    if all("ece_calibrated" in r[plain] for r in rows):  # not in results measured before it
        floor = [_floor(r[plain], "ece") for r in rows]
        numbers["a calibrated model's ECE on as many images (mean, 95th pct, plain)"] = (
            f"{mean_spread([f[0] for f in floor])[0]:.3f}, "
            f"{mean_spread([f[1] for f in floor])[0]:.3f}"
        )
    numbers["seeds"] = len(rows)
    return numbers


def _floor(run: dict, key: str) -> tuple[float, float]:
    """(mean, 95th percentile) ECE of a calibrated model like `run`'s (0, 0: not measured)."""
    return tuple(run.get(f"{key}_calibrated", (0.0, 0.0)))


def _off(run: dict, key: str) -> bool:
    """The ECE `key` is above CALIBRATED and above what a calibrated model shows (95th pct)."""
    return run[key] > CALIBRATED and run[key] > _floor(run, key)[1]


def figure(m: dict):
    fig, axes = figure_axes(2, height=3.3)
    first = m["seeds"][0]
    for ax, name in zip(axes, SMOOTHING, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        for k, (key, label) in enumerate(
            (
                ("reliability", "softmax"),
                ("reliability_scaled", f"softmax(z/T), T={first[name]['temperature']:.2f}"),
            )
        ):
            bins = first[name][key]
            ax.plot(
                [b[0] for b in bins], [b[1] for b in bins], "o-", ms=3, color=f"C{k}", label=label
            )
        ax.set_title(f"{name}: ECE {first[name]['ece']:.3f} -> {first[name]['ece_scaled']:.3f}")
        ax.set_xlabel("confidence (top softmax probability)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="softmax",
    title="Softmax and calibration",
    section="§5.5",
    claim="Softmax turns logits into a probability distribution over the classes: values in "
    "(0, 1) summing to 1, read as the model's probabilities.",
    setup="Fashion-MNIST subsets; a 3-block GAP CNN trained with plain cross-entropy and with "
    f"label smoothing 0.1. Sums and ranges of the softmax; expected calibration error ({BINS} "
    "bins) and reliability diagram on the test images, before and after temperature scaling "
    "with T fitted (grid 0.1-10, NLL) on the trainer's validation split.",
    rule=f"Holds if the outputs are a distribution (in [0, 1], sums within 1e-6 of 1) and the "
    f"plain model's ECE is at most {CALIBRATED} on every seed; partly if it is a distribution "
    f"whose plain ECE exceeds {CALIBRATED} and a temperature brings it under on every seed, or "
    f"whose ECE before and after the temperature exceeds {CALIBRATED} and the 95th percentile "
    "of a calibrated model's (labels drawn from its own confidences, as many test images) on "
    "every seed; does not hold if it is not a distribution; otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Reliability diagrams on the test images (first seed): the accuracy of each "
    "confidence bin against its mean confidence, before and after temperature scaling. A "
    "calibrated model lies on the dotted diagonal.",
    revised="after a quick run had been seen: an ECE no higher than a calibrated model shows "
    "on as many test images is no longer called miscalibrated",
)
