"""Weight sharing (§1): one kernel slid everywhere against a kernel per position.

A locally connected layer has the geometry of a convolution (the same k×k windows, stride and
padding) but its own weights at every output position: nothing is shared, so it has H'·W'
times the weights and no built-in assumption that a pattern means the same everywhere. The
notes: sharing is a regulariser (less variance, less overfitting) at the price of bias.
Measured: the first two layers of a small net as convolutions or as locally connected layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.lab.experiment import (
    Context,
    Experiment,
    Verdict,
    disagreement,
    figure_axes,
    mean_spread,
    seed_count,
    seed_points,
)

FEWER = 10  # the conv net must have at most 1/FEWER of the locally connected net's weights
LESS_GAP = 2.0  # points: its train-test gap must be at least this much smaller


class LocallyConnected2d(nn.Module):
    """A convolution's windows with unshared weights: out[b, o, p] = Σ_k W[p, o, k] · patch[b,
    k, p] + bias[o, p] for every output position p. `(B, C, H, W)` -> `(B, out, H', W')`,
    H' as for nn.Conv2d (stride 1). Initialised as nn.Conv2d: U(±1/√(C·k²))."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, size: int, padding: int):
        super().__init__()
        self.kernel, self.padding = kernel, padding
        self.side = size + 2 * padding - kernel + 1
        positions, fan_in = self.side**2, in_channels * kernel * kernel
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(
            torch.empty(positions, out_channels, fan_in).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, positions).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(x, self.kernel, padding=self.padding)  # (B, C·k², P)
        out = torch.einsum("bkp,pok->bop", cols, self.weight) + self.bias  # (B, out, P)
        return out.reshape(len(x), -1, self.side, self.side)  # (B, out, H', W')

    def extra_repr(self) -> str:
        p, o, k = self.weight.shape
        return f"positions={p}, out_channels={o}, window={k}, kernel={self.kernel}"


def net(shared: bool) -> nn.Sequential:
    """Two 3×3 'same' layers (1 -> 16 at 28×28, 16 -> 32 at 14×14), shared (Conv2d) or not
    (LocallyConnected2d), each with batch norm, ReLU, 2×2 max pool; then a shared 3×3 conv of
    32, batch norm, ReLU, GAP and linear 10."""

    def layer(c_in: int, c_out: int, size: int) -> nn.Module:
        if shared:
            return nn.Conv2d(c_in, c_out, 3, padding=1)
        return LocallyConnected2d(c_in, c_out, 3, size, 1)

    return nn.Sequential(
        layer(1, 16, 28), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        layer(16, 32, 14), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


MODELS = {"convolution (shared)": True, "locally connected": False}


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(3, 6)
    seeds, params = [], {}
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        for j, (name, shared) in enumerate(MODELS.items()):
            ctx.progress(2 * i + j, 2 * len(ctx.seeds), f"seed {seed}: {name}")
            torch.manual_seed(seed)  # as the trainer seeds a spec's build
            model = net(shared)
            params[name] = sum(p.numel() for p in model.parameters())
            trained = ctx.train(model, (train, test), seed, epochs=epochs)
            fit = trained.trained_on  # not the validation images the trainer held out
            row[name] = {
                "train": round(100 * trained.accuracy(fit.images, fit.labels), 2),
                "test": round(100 * trained.accuracy(test.images, test.labels), 2),
            }
        seeds.append(row)
    return {"seeds": seeds, "params": params, "epochs": epochs, "train_images": len(train)}


def judge(m: dict) -> Verdict:
    """The notes' trade-off, both halves, per seed: *less variance*: the conv net's train-test
    gap ≤ the locally connected net's − LESS_GAP; *more bias*: its accuracy on the images it
    was fitted on is lower. Its weights ≤ 1/FEWER of them. Holds: the weights and both halves
    on every seed. Partly: the weights and one half on every seed. Does not hold: the conv net
    overfits no less (a gap at least as large) on every seed. Otherwise (a smaller gap, but
    within LESS_GAP) inconclusive. Test accuracy is shown, not judged: the notes trade less
    variance for more bias and do not say which wins on the test images."""
    conv, local = MODELS
    rows, p = m["seeds"], m["params"]
    gaps = [
        (r[conv]["train"] - r[conv]["test"], r[local]["train"] - r[local]["test"]) for r in rows
    ]
    less = [c <= lc - LESS_GAP for c, lc in gaps]
    bias = [r[conv]["train"] < r[local]["train"] for r in rows]
    fewer = p[conv] * FEWER <= p[local]
    g_conv, g_local = (mean_spread(col) for col in zip(*gaps, strict=True))
    numbers = {
        "weights (conv, locally connected)": f"{p[conv]:,}, {p[local]:,}",
        "train − test gap, points (conv, locally connected)": f"{g_conv[0]:.1f} ± {g_conv[1]:.1f}, "
        f"{g_local[0]:.1f} ± {g_local[1]:.1f}",
        **{
            f"{n}: train / test %": "{:.1f} / {:.1f}".format(
                mean_spread([r[n]["train"] for r in rows])[0],
                mean_spread([r[n]["test"] for r in rows])[0],
            )
            for n in MODELS
        },
        "seeds": len(rows),
    }
    n = len(rows)
    said = (
        f"With {p[local] / p[conv]:.0f}× the weights, the unshared net's train-test gap was "
        f"{g_local[0]:.1f} ± {g_local[1]:.1f} points against the conv net's {g_conv[0]:.1f} ± "
        f"{g_conv[1]:.1f} (mean ± sd over {seed_count(n)}; at least {LESS_GAP:g} points smaller "
        f"on {sum(less)} of {seed_count(n)})"
    )
    said += _bias(rows) + _test(rows)
    if fewer and all(less) and all(bias):
        return Verdict(
            "holds", numbers, f"{said}: sharing traded less overfitting for a lower fit to "
            "the training images, the notes' trade-off.",
        )  # fmt: skip
    if fewer and (all(less) or all(bias)):
        part = "less overfitting" if all(less) else "the bias (a lower fit to the training images)"
        return Verdict("partly", numbers, f"{said}: only {part} held on every seed.")
    if not fewer or not any(c < lc for c, lc in gaps):
        return Verdict("does not hold", numbers, f"{said}: sharing did not reduce overfitting.")
    smaller = sum(c < lc for c, lc in gaps)
    split = disagreement({f"gap {LESS_GAP:g} points smaller": less, "training fit lower": bias})
    return Verdict(
        "inconclusive",
        numbers,
        f"{said}: the conv net's gap was smaller on {smaller} of {seed_count(n)}; {split}.",
    )


def _bias(rows: list[dict]) -> str:
    """The notes' other half of the trade-off, bias: each net's accuracy on the images it was
    fitted on, and on how many seeds the conv net's was lower (judged)."""
    conv, local = MODELS
    n = len(rows)
    f_conv, f_local = (mean_spread([r[name]["train"] for r in rows]) for name in MODELS)
    lower = sum(r[conv]["train"] < r[local]["train"] for r in rows)
    return (
        f"; the conv net fitted its training images to {f_conv[0]:.1f} ± {f_conv[1]:.1f} % "
        f"against {f_local[0]:.1f} ± {f_local[1]:.1f} % (lower on {lower} of {seed_count(n)}: "
        "the bias the notes trade for less variance)"
    )


def _test(rows: list[dict]) -> str:
    """Each net's test accuracy: measured, so shown; the notes make no claim on it."""
    conv, local = MODELS
    t_conv, t_local = (mean_spread([r[n]["test"] for r in rows]) for n in MODELS)
    higher = sum(r[conv]["test"] >= r[local]["test"] for r in rows)
    return (
        f"; its test accuracy {t_conv[0]:.1f} ± {t_conv[1]:.1f} % against the unshared net's "
        f"{t_local[0]:.1f} ± {t_local[1]:.1f} % (at least as high on {higher} of "
        f"{seed_count(len(rows))}; shown, not judged)"
    )


def figure(m: dict):
    fig, (ax,) = figure_axes(1, height=3.0, width=6.0)
    for k, key in enumerate(("train", "test")):
        for j, name in enumerate(MODELS):
            values = [r[name][key] for r in m["seeds"]]
            mean, sd = mean_spread(values)
            ax.bar(
                j + 0.4 * k, mean, yerr=sd, width=0.4, color=f"C{k}", label=key if j == 0 else None
            )
            seed_points(ax, j + 0.4 * k, values)
    ax.set_xticks([0.2, 1.2], [f"{n}\n{m['params'][n]:,} weights" for n in MODELS])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(40, 100)
    ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="sharing",
    title="Weight sharing",
    section="§1",
    claim="Sliding one kernel everywhere (weight sharing) acts as a regulariser: far fewer "
    "weights and less overfitting than a layer with the same windows but its own weights at "
    "every position, at the price of assuming a pattern means the same everywhere: more bias, "
    "which shows as a lower accuracy on the training images. (Test accuracy is reported beside "
    "the verdict, not judged: the notes trade one for the other, and do not say which wins.)",
    setup="Fashion-MNIST subsets; a net whose first two 3×3 layers are convolutions, and the "
    "same net with locally connected layers (same windows, unshared weights; batch norm, ReLU, "
    "max pooling after each; a shared tail), trained alike. Accuracy on the images each net "
    "was fitted on (the training subset less the trainer's validation split) and on the test "
    "images.",
    rule=f"Holds if the conv net has at most 1/{FEWER} of the weights and, on every seed, a "
    f"train-test gap at least {LESS_GAP} points smaller (less variance) and a lower accuracy "
    "on the images it was fitted on (more bias); partly if the weights and one of the two hold "
    "on every seed; does not hold if its gap is not smaller on any seed; otherwise "
    "inconclusive. Test accuracy is shown, not judged.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Accuracy on the images each net was fitted on (train) and on the test images (bars: "
    "mean ± sd; dots: seeds). The space between a net's two bars is its overfitting; the conv "
    "net's train bar below the unshared net's is the bias the notes trade for less of it.",
    revised="after a quick run had been seen: 'does not hold' needs the conv net's gap no "
    "smaller on every seed; one smaller by less than 2 points (the quick lab's 2.6 against "
    "2.7) had been 'does not hold' and is now inconclusive; and after a review of the full "
    "lab: the rule asked a test accuracy at least as high, which the notes do not claim (they "
    "trade less variance for more bias), and left the bias unjudged; it now judges the notes' "
    "two halves, the smaller gap and the lower fit to the training images, and shows the test "
    "accuracy (the full lab's verdict went from 'partly' to 'holds')",
)
