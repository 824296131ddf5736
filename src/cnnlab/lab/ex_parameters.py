"""Parameter efficiency (§1): a CNN reaches an MLP's accuracy with far fewer parameters.

The notes' arithmetic: a dense layer from a 224×224×3 image to 1,000 units has
224·224·3·1,000 weights + 1,000 biases = 150,529,000 parameters, where a 3×3 convolution to 64
filters has (3·3·3 + 1)·64 = 1,792 (§1 formula). The measured half: on Fashion-MNIST, a small
GAP CNN against an MLP of the same budget and a wide MLP of 8× the budget.
"""

from __future__ import annotations

from matplotlib.ticker import NullFormatter
from torch import nn

from cnnlab import geometry, load_spec, summary
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
from cnnlab.lab.models import conv_stack, head, mlp, spec

WIN = 2.0  # points: at the same budget the CNN must beat the MLP by this much
MATCH = 1.0  # points: "reaches the wide MLP's accuracy" means at most this much below it
FEWER = 4  # the CNN must use at most 1/FEWER of the wide MLP's parameters
MODELS = {
    "CNN (16, 32, 64), GAP": conv_stack((16, 32, 64)) + head("gap"),
    "MLP, 30 hidden (same budget)": mlp((30,)),
    "MLP, 256 hidden": mlp((256,)),
}
CNN, SMALL, WIDE = MODELS


def arithmetic() -> dict:
    """The notes' 224×224×3 -> 1,000 count by the formula and by PyTorch (meta tensors: no
    memory is allocated), and a 3×3×3 -> 64 convolution's."""
    dense = nn.Linear(224 * 224 * 3, 1000, device="meta")
    conv = nn.Conv2d(3, 64, 3, device="meta")
    return {
        "dense_formula": geometry.linear_params(224 * 224 * 3, 1000),
        "dense_torch": sum(p.numel() for p in dense.parameters()),
        "conv_formula": geometry.conv_params(3, 3, 64),
        "conv_torch": sum(p.numel() for p in conv.parameters()),
    }


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(3, 6)
    params = {n: summary(load_spec(spec("m", layers))).total_params for n, layers in MODELS.items()}
    seeds, steps = [], len(MODELS) * len(ctx.seeds)
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        for j, (name, layers) in enumerate(MODELS.items()):
            ctx.progress(i * len(MODELS) + j, steps, f"seed {seed}: {name}")
            trained = ctx.train(spec("m", layers), (train, test), seed, epochs=epochs)
            row[name] = round(100 * trained.accuracy(test.images, test.labels), 2)
        seeds.append(row)
    return {
        "seeds": seeds,
        "params": params,
        "arithmetic": arithmetic(),
        "epochs": epochs,
        "train_images": len(train),
    }


def judge(m: dict) -> Verdict:
    """Arithmetic: the formula equals PyTorch's count and exceeds 150M. Budget: the CNN beats
    the same-budget MLP by WIN points on every seed. Efficiency: the CNN is at most MATCH points
    below the wide MLP on every seed with at most 1/FEWER of its parameters. Holds: all three;
    partly: the arithmetic and one of the others on every seed; does not hold: the arithmetic
    fails, or neither comparison on any seed; otherwise inconclusive."""
    a, p, rows = m["arithmetic"], m["params"], m["seeds"]
    arithmetic_ok = a["dense_formula"] == a["dense_torch"] > 150e6 and (
        a["conv_formula"] == a["conv_torch"]
    )
    budget = [r[CNN] >= r[SMALL] + WIN for r in rows]
    efficient = [r[CNN] >= r[WIDE] - MATCH and p[CNN] * FEWER <= p[WIDE] for r in rows]
    acc = {name: mean_spread([r[name] for r in rows]) for name in MODELS}
    numbers = {
        "224×224×3 -> 1,000 dense (formula, torch)": f"{a['dense_formula']:,}, "
        f"{a['dense_torch']:,}",
        "3×3×3 -> 64 conv (formula, torch)": f"{a['conv_formula']:,}, {a['conv_torch']:,}",
        **{f"{n}: {p[n]:,} params, acc %": "{:.1f} ± {:.1f}".format(*acc[n]) for n in MODELS},
        "seeds": len(rows),
    }
    ratio = p[WIDE] / p[CNN]
    n = len(rows)
    said = (
        f"The CNN ({p[CNN]:,} parameters) scored {acc[CNN][0]:.1f} ± {acc[CNN][1]:.1f} %, the "
        f"same-budget MLP {acc[SMALL][0]:.1f} ± {acc[SMALL][1]:.1f} %, the {ratio:.0f}× larger "
        f"MLP {acc[WIDE][0]:.1f} ± {acc[WIDE][1]:.1f} % (mean ± sd over {seed_count(n)}; the CNN "
        "at "
        f"least {WIN:g} points above the same-budget MLP on {sum(budget)}, at most {MATCH:g} "
        f"below the larger one on {sum(efficient)}); a 224×224×3 -> 1,000 dense layer has "
        f"{a['dense_formula']:,} parameters by formula ({224 * 224 * 3 * 1000:,} weights + "
        f"1,000 biases), {a['dense_torch']:,} counted by PyTorch"
    )
    if not arithmetic_ok:
        return Verdict("does not hold", numbers, f"{said}: the notes' parameter arithmetic is off.")
    if all(budget) and all(efficient):
        return Verdict("holds", numbers, f"{said}: fewer parameters for the same accuracy.")
    if all(budget) or all(efficient):
        split = disagreement(
            {"beat the same-budget MLP": budget, "matched the larger MLP": efficient}
        )
        return Verdict("partly", numbers, f"{said}: {split}.")
    if not any(budget) and not any(efficient):
        return Verdict(
            "does not hold",
            numbers,
            f"{said}: the count holds, but on no seed did the CNN's accuracy beat the "
            f"same-budget MLP by {WIN:g} points or come within {MATCH:g} of the larger one.",
        )
    split = disagreement({"beat the same-budget MLP": budget, "matched the larger MLP": efficient})
    return Verdict("inconclusive", numbers, f"{said}: {split}.")


def figure(m: dict):
    fig, (ax, bars) = figure_axes(2, height=3.0)
    for k, name in enumerate(MODELS):
        values = [r[name] for r in m["seeds"]]
        mean, sd = mean_spread(values)
        label = f"{name}: {m['params'][name]:,} params"
        ax.errorbar(m["params"][name], mean, yerr=sd, fmt="o", color=f"C{k}", label=label)
        seed_points(ax, m["params"][name], values)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # "3×10⁴4×10⁴" within a decade; counts: legend
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    a = m["arithmetic"]
    bars.barh([0, 1], [a["dense_formula"], a["conv_formula"]], color=["C1", "C0"])
    bars.set_xscale("log")
    bars.set_yticks([0, 1], ["dense 224×224×3\n-> 1,000", "conv 3×3×3\n-> 64"])
    bars.set_xlabel("parameters (log)")
    for y, v in enumerate((a["dense_formula"], a["conv_formula"])):
        bars.text(v, y, f" {v:,}", va="center", fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="parameters",
    title="Parameter efficiency",
    section="§1",
    claim="A fully connected layer on a 224×224×3 image to 1,000 units needs over 150 M "
    "parameters; a CNN needs far fewer for the same accuracy.",
    setup="The count by cnnlab.geometry and by PyTorch. Fashion-MNIST subsets: a GAP CNN with "
    "three 3×3 conv layers (16, 32, 64 filters, batch norm, max pooling), an MLP with the same "
    "parameter budget (30 hidden units) and one with 256 hidden units, same training.",
    rule=f"Holds if the arithmetic is confirmed by PyTorch, the CNN beats the same-budget MLP "
    f"by at least {WIN} points on every seed, and the CNN is at most {MATCH} point below the "
    f"wide MLP on every seed with at most 1/{FEWER} of its parameters; partly if the arithmetic "
    "and one comparison hold; does not hold if the arithmetic fails or neither comparison holds "
    "on any seed; otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Left: test accuracy against parameters (log scale), mean ± sd, each seed a dot: the "
    "CNN should sit as high as the wide MLP with far fewer parameters. Right: the notes' "
    "arithmetic, a dense layer on a 224×224×3 image against a 3×3 conv layer of 64 filters (log "
    "scale).",
)
