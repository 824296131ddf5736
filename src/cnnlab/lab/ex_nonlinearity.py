"""Non-linearity (§4.1): without activations a deep net is one linear map.

Convolutions, flatten and linear layers are affine, and so is any composition of them:
f(x) = A x + b. The map is read off the trained net itself: b = f(0), and column i of A is
f(e_i) − b for the unit image e_i (one batch of H·W images, in float64). If the composition
is exact, f(x) and A x + b agree on real images to rounding, and the deep linear net can do no
better than a linear classifier on pixels: logistic regression.
"""

from __future__ import annotations

import copy

import torch

from cnnlab.lab.experiment import Context, Experiment, Verdict, figure_axes, mean_spread, seed_count
from cnnlab.lab.models import conv, spec

AGREE = 1e-5  # max |f(x) − (A x + b)| over test logits, float64
SAME = 2.0  # points: the deep linear net does "no more" than logistic regression if it scores
# at most this much above it (mean); below it is no evidence against the claim (a deep linear
# net is harder to optimise than the one layer it equals)
HELPS = 1.0  # points: the ReLU control must beat both by this on every seed


def deep(act: str | None) -> list:
    """Three 3×3 convs (8, 16, 16; the last two stride 2), flatten, linear 64, linear 10;
    `act` after every layer but the last, or none at all."""
    body = [conv(8), conv(16, stride=2, padding=1), conv(16, stride=2, padding=1)]
    layers: list = []
    for layer in body:
        layers += [layer, act] if act else [layer]
    layers += ["flatten", {"linear": 64}]
    return [*layers, act, {"linear": 10}] if act else [*layers, {"linear": 10}]


MODELS = {
    "deep linear (no activation)": deep(None),
    "logistic regression": ["flatten", {"linear": 10}],
    "deep ReLU (control)": deep("relu"),
}
LINEAR, LOGISTIC, RELU = MODELS
ADAMW = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05}  # no BN: SGD at 0.1 diverges


@torch.no_grad()
def composed(model: torch.nn.Module, shape: tuple[int, int, int]) -> tuple:
    """(A (k, C·H·W), b (k,)) of an affine model, read off in float64."""
    net = copy.deepcopy(model).double().eval()
    n = shape[0] * shape[1] * shape[2]
    b = net(torch.zeros(1, *shape, dtype=torch.float64))[0]  # (k,)
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape)  # (n, C, H, W)
    a = (net(basis) - b).T  # (k, n)
    return a, b


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(3, 6)
    seeds, steps = [], len(MODELS) * len(ctx.seeds)
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        for j, (name, layers) in enumerate(MODELS.items()):
            ctx.progress(i * len(MODELS) + j, steps, f"seed {seed}: {name}")
            trained = ctx.train(spec("m", layers), (train, test), seed, epochs=epochs, **ADAMW)
            row[name] = round(100 * trained.accuracy(test.images, test.labels), 2)
            if name == LINEAR:
                x = trained.inputs(test.images).double()  # (N, 1, 28, 28)
                a, b = composed(trained.model, tuple(x.shape[1:]))
                with torch.no_grad():
                    exact = copy.deepcopy(trained.model).double().eval()(x)
                    single = trained.model.eval()(x.float()).double()
                mapped = x.flatten(1) @ a.T + b  # (N, 10)
                row["max_diff_float64"] = float((exact - mapped).abs().max())
                row["max_diff_float32"] = float((single - mapped).abs().max())
                row["max_logit"] = float(exact.abs().max())
                row["map_accuracy"] = round(
                    100 * float((mapped.argmax(1) == test.labels).float().mean()), 2
                )
        seeds.append(row)
    return {"seeds": seeds, "epochs": epochs, "train_images": len(train)}


def judge(m: dict) -> Verdict:
    """Collapse: max |f(x) − (Ax + b)| ≤ AGREE (float64) on every seed. No more: the deep
    linear net's accuracy minus logistic regression's is at most +SAME points on average (the
    claim bounds it from above only). Control: the ReLU net beats both by HELPS on every seed.
    Holds: all three. Partly: collapse, but the bound, the control or both fail (the reason
    names which). Does not hold: no collapse. A spread (sd over seeds) wider than SAME (with
    collapse) is inconclusive where the seeds' differences lie on both sides of +SAME: some at
    or below it, some above."""
    rows = m["seeds"]
    collapse = [r["max_diff_float64"] <= AGREE for r in rows]
    gaps = [r[LINEAR] - r[LOGISTIC] for r in rows]
    diff, sd = mean_spread(gaps)
    helps = [r[RELU] >= max(r[LINEAR], r[LOGISTIC]) + HELPS for r in rows]
    acc = {n: mean_spread([r[n] for r in rows]) for n in MODELS}
    numbers = {
        "max |f(x) − (Ax+b)|, float64": max(r["max_diff_float64"] for r in rows),
        "same, float32 model against the map": max(r["max_diff_float32"] for r in rows),
        **{f"{n} acc %": "{:.1f} ± {:.1f}".format(*acc[n]) for n in MODELS},
        "deep linear − logistic (points)": f"{diff:.2f} ± {sd:.2f}",
        "seeds": len(rows),
    }
    n = len(rows)
    told = (
        "The 5-layer net without activations differed from one affine map by at most "
        f"{numbers['max |f(x) − (Ax+b)|, float64']:.1e} (float64; at most {AGREE:g} on "
        f"{sum(collapse)} of {seed_count(n)}) and scored {acc[LINEAR][0]:.1f} ± "
        f"{acc[LINEAR][1]:.1f} "
        f"% against logistic regression's {acc[LOGISTIC][0]:.1f} ± {acc[LOGISTIC][1]:.1f} % "
        f"(difference {diff:.2f} ± {sd:.2f} points); with ReLUs {acc[RELU][0]:.1f} ± "
        f"{acc[RELU][1]:.1f} %, at least {HELPS:g} point above both on {sum(helps)} of "
        f"{seed_count(n)} (mean ± sd over {seed_count(n)})"
    )
    if not all(collapse):
        return Verdict("does not hold", numbers, f"{told}: it is not one affine map.")
    # the claim bounds the gap from above: a wide spread leaves it open only where the seeds
    # straddle the bound (-14 and -8 are both "no more", 5 and 20 both more, however far apart)
    if n > 1 and sd > SAME and min(gaps) <= SAME < max(gaps):
        return Verdict(
            "inconclusive", numbers, f"{told}: the accuracy gap varies too much over seeds."
        )
    no_more = diff <= SAME
    if no_more and all(helps):
        return Verdict("holds", numbers, f"{told}.")
    failed = []
    if not no_more:
        failed.append(f"the linear net scored more than {SAME:g} points above logistic regression")
    if not all(helps):
        failed.append(f"the ReLU net did not beat both by {HELPS:g} point on every seed")
    return Verdict("partly", numbers, f"{told}: it collapsed, but {' and '.join(failed)}.")


def figure(m: dict):
    fig, (ax, diff) = figure_axes(2, height=3.0)
    for k, name in enumerate(MODELS):
        values = [r[name] for r in m["seeds"]]
        mean, sd = mean_spread(values)
        ax.bar(k, mean, yerr=sd, color=f"C{k}")
        ax.plot([k] * len(values), values, "k.", ms=4)
    ax.set_xticks(range(len(MODELS)), [n.replace(" (", "\n(") for n in MODELS], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    low = min(min(r[n] for n in MODELS) for r in m["seeds"])
    ax.set_ylim(max(0, low - 10), 100)
    seeds = [r["seed"] for r in m["seeds"]]
    diff.semilogy(seeds, [r["max_diff_float64"] for r in m["seeds"]], "o", label="float64 net")
    diff.semilogy(seeds, [r["max_diff_float32"] for r in m["seeds"]], "s", label="float32 net")
    diff.axhline(AGREE, color="grey", ls=":", label=f"rule: {AGREE:g}")
    diff.set_xticks(seeds)  # whole seeds, not 0.25 steps
    diff.set_xlabel("seed")
    diff.set_ylabel("max |f(x) − (Ax + b)|")
    diff.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="nonlinearity",
    title="Non-linearity",
    section="§4.1",
    claim="Without activation functions a multi-layer network is a single linear "
    "transformation: it can do no more than one linear layer.",
    setup="Fashion-MNIST subsets; three 3×3 convs + two linear layers with no activation, "
    "logistic regression on pixels, and the same deep net with ReLUs; AdamW, same epochs. The "
    "trained linear net's map A x + b is read off with unit images in float64 and compared "
    "with the net on the test images.",
    rule=f"Holds if the net equals its composed map within {AGREE:g} on every seed, its "
    f"accuracy is at most {SAME} points above logistic regression's on average (below it is "
    f"allowed: 'no more than'), and the ReLU net beats both by {HELPS} "
    "point on every seed; partly if it "
    "collapses but only part of the rest holds; does not hold if it does not collapse; "
    f"inconclusive if the accuracy gap's spread exceeds {SAME} points and the seeds' gaps lie "
    f"on both sides of +{SAME} points (some at most {SAME} above logistic regression, some "
    "more).",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Left: test accuracy of the deep net without activations, logistic regression on the "
    "pixels, and the deep net with ReLUs (bars: mean; dots: seeds). Right: the largest difference "
    "between the linear net and its composed map A x + b on the test images, per seed, against "
    "the rule's 1e-5 (log scale).",
    revised="after a quick run had been seen: 'no more than one linear layer' is read as the "
    "one-sided bound it is (at most 2 points above logistic regression), not as a match within "
    "±2 points, which had counted a deep linear net 2.1 points below against the claim; and "
    "after a review: a spread wider than the bound leaves the verdict inconclusive "
    "only where the seeds' gaps lie on both sides of the bound; two seeds 14 and 8 points "
    "below logistic regression were inconclusive, and so were two 5 and 20 points above, both "
    "beyond the bound (the same revision made consistent: the first version of it still "
    "required a spread below the bound for 'no more' and left every-seed-above gaps open; the "
    "full lab's verdict stayed 'holds')",
)
